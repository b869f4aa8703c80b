"""The tools the stages drive: ansible-runner (``ansible``, with ``inventory``), the pinned
Pulumi engine (``engine``), SSH to source hosts (``access``), the exchange platform's client
(``exchange``), Jinja2 rendering (``render``) and the host's processes (``processes``).
They may ask the estate's cloud target (``migrate.targets``: which key, which known_hosts,
which addresses), never a stage."""
