"""The model and the data files: manifests and settings (``model``, ``loader``, ``schema``,
``safety``), their validation, the census and the plan (``census``, ``plan``,
``plan_document``, ``stackplan``), the state folder, the audit journal and its signing, and
the one error type (``errors``). Pure or file-only: nothing here talks to a host or a cloud."""
