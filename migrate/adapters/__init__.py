"""The tools the stages drive: ansible-runner (``ansible``, with ``inventory``), the pinned
Pulumi engine (``engine``), SSH to source hosts (``access``), the exchange platform's client
(``exchange``), Jinja2 rendering (``render``) and the host's processes (``processes``)."""
