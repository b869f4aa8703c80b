// Package provider describes the bridged OpenStack provider: the Terraform provider
// terraform-provider-openstack wrapped by the Pulumi Terraform bridge, with the tokens of the
// pulumi-openstack SDK the project pins (see tokens.go).
package provider

import (
	"fmt"
	"sort"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-provider-openstack/terraform-provider-openstack/v3/openstack"
)

// PackageName is the Pulumi package, the plugin's name and the Terraform name prefix.
const PackageName = "openstack"

// Version is the version the plugin reports; the build sets it (-ldflags -X) to the
// pulumi-openstack SDK version the project pins, so the engine loads it for that SDK.
var Version = "0.0.0-dev"

// TFProviderVersion is set by the build to the terraform-provider-openstack module version.
var TFProviderVersion = ""

func names(rangeFn func(func(string) bool)) []string {
	var out []string
	rangeFn(func(name string) bool {
		out = append(out, name)
		return true
	})
	sort.Strings(out)
	return out
}

// Provider returns the bridge's description of the provider, every token mapped.
func Provider() tfbridge.ProviderInfo {
	p := shimv2.NewProvider(openstack.Provider())
	resources := names(func(yield func(string) bool) {
		p.ResourcesMap().Range(func(key string, _ shim.Resource) bool { return yield(key) })
	})
	dataSources := names(func(yield func(string) bool) {
		p.DataSourcesMap().Range(func(key string, _ shim.Resource) bool { return yield(key) })
	})
	resourceTokens, functionTokens, err := Tokens(resources, dataSources)
	if err != nil {
		panic(fmt.Sprintf("mapping OpenStack tokens: %v", err))
	}
	info := tfbridge.ProviderInfo{
		P:                       p,
		Name:                    PackageName,
		Version:                 Version,
		GitHubOrg:               "terraform-provider-openstack",
		Description:             "A Pulumi package for creating and managing OpenStack cloud resources.",
		Keywords:                []string{"pulumi", "openstack"},
		License:                 "Apache-2.0",
		Repository:              "https://github.com/pulumi/pulumi-openstack",
		TFProviderVersion:       TFProviderVersion,
		TFProviderModuleVersion: "v3",
		Resources:               map[string]*tfbridge.ResourceInfo{},
		DataSources:             map[string]*tfbridge.DataSourceInfo{},
	}
	for name, token := range resourceTokens {
		info.Resources[name] = &tfbridge.ResourceInfo{Tok: tokens.Type(token)}
	}
	for name, token := range functionTokens {
		info.DataSources[name] = &tfbridge.DataSourceInfo{Tok: tokens.ModuleMember(token)}
	}
	return info
}
