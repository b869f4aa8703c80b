// pulumi-tfgen-openstack writes the Pulumi schema of the bridged OpenStack provider
// (`pulumi-tfgen-openstack schema --out DIR --skip-docs --skip-examples`), which the plugin
// embeds in the second step of the build.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"migrate.local/pulumi-openstack/provider"
)

func main() {
	tfgen.Main(provider.PackageName, provider.Version, provider.Provider())
}
