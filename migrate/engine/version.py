"""The one Pulumi version the project pins: engine, language host and Python SDK alike.

3.260.0 is the newest version for which PyPI serves the ``pulumi`` SDK and the Go module
proxy serves both ``github.com/pulumi/pulumi/pkg/v3`` and ``sdk/v3`` (pkg/v3 3.261-3.272
are not served there).
"""

PULUMI_VERSION = "3.260.0"
PKG_MODULE = "github.com/pulumi/pulumi/pkg/v3"
SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"
CLI_PACKAGE = f"{PKG_MODULE}/cmd/pulumi"
VERSION_SYMBOL = f"{SDK_MODULE}/go/common/version.Version"
