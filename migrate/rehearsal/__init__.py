"""The rehearsal: what stands in for the city around the cloud on one host. ``sandbox`` (a
cloud of systemd-nspawn machines, the department server rooms, the package mirror),
``legacy`` (the department systems' demo application), ``exchange`` (a reference exchange
platform and its CA) and ``testcloud`` (an all-in-one OpenStack). It plugs in through the
entry points in pyproject.toml; nothing outside this package imports it."""
