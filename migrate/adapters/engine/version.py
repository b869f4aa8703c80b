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

# The OpenStack resource plugin (migrate.adapters.engine.provider): the Pulumi Terraform bridge
# around the Terraform provider, built from providers/openstack (its go.mod requires exactly these).
# It reports, and is installed as, the version of the pulumi-openstack Python SDK the project
# pins in pyproject.toml, so the engine loads it for that SDK without downloading anything.
OPENSTACK_PROVIDER_VERSION = "5.5.3"
BRIDGE_MODULE = "github.com/pulumi/pulumi-terraform-bridge/v3"
BRIDGE_VERSION = "v3.120.0"
TF_OPENSTACK_MODULE = "github.com/terraform-provider-openstack/terraform-provider-openstack/v3"
TF_OPENSTACK_VERSION = "v3.4.0"
# The bridge's own go.mod replaces the plugin SDK by Pulumi's fork; a dependency's replaces do
# not apply to the module that requires it, so providers/openstack/go.mod repeats it.
PLUGIN_SDK_REPLACE = (
    "github.com/hashicorp/terraform-plugin-sdk/v2",
    "github.com/pulumi/terraform-plugin-sdk/v2",
    "v2.0.0-20250923233607-7f1981c8674a",
)
