"""The data sharing and exchange platform (政务数据共享交换平台).

- ``server``: a reference implementation of the platform's HTTP API (stdlib only, one file
  that also runs as a copied script on a machine with only Debian's python3).
- ``client``: the toolkit's client of that API (stdlib only, one file, also a script).
- ``pki``: the sandbox CA and server certificates (host side, uses ``cryptography``).

The API itself is documented in ``docs/exchange-api.md`` and ``docs/exchange-openapi.yaml``.
"""
