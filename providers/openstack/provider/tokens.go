// Token mapping: which Pulumi token each Terraform resource and data source gets.
//
// The Pulumi tokens must be the ones the pulumi-openstack Python SDK that the project pins
// calls (sdk-tokens.txt, written by `python -m migrate.engine sdk-tokens` from the installed
// SDK). The rule:
//
//  1. A Terraform name openstack_<group>_<words...>_v<N> is split into its group, its words
//     and its API version suffix.
//  2. The group names a module: the SDK module of that name, else the module the short group
//     abbreviates (groupModules), else "index".
//  3. The SDK's tokens are compared letter for letter, ignoring case and underscores, with
//     the words (without, then with, the version suffix), then with the group prefixed to
//     them (the SDK's "getDnsZone" for data source openstack_dns_zone_v2); functions without
//     their "get" prefix. The module's own tokens are tried before those of "index".
//  4. resourceExceptions and functionExceptions hold the few SDK names no such comparison
//     finds (misspelt or renamed ones).
//  5. A name the SDK does not know (a resource newer than the SDK) gets the module and the
//     words in UpperCamelCase with the version suffix (and the group, if that is taken).
//     Names whose group is an SDK module are mapped first.
package provider

import (
	_ "embed"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

//go:embed sdk-tokens.txt
var sdkTokensText string

const indexModule = "index"

// groupModules: Terraform name groups that are abbreviations of an SDK module.
var groupModules = map[string]string{
	"lb": "loadbalancer",
	"fw": "firewall",
	"db": "database",
}

// Terraform names whose SDK token the comparison cannot find (misspelt or renamed), as
// "<module>/<Name>", for resources and for data sources.
var (
	resourceExceptions = map[string]string{
		"openstack_blockstorage_quotaset_v3": "blockstorage/QuoteSetV3",
		"openstack_objectstorage_object_v1":  "objectstorage/ContainerObject",
	}
	functionExceptions = map[string]string{
		"openstack_lb_flavor_v2":                           "loadbalancer/getLbFlavorDeprecated",
		"openstack_sharedfilesystem_availability_zones_v2": "sharedfilesystem/getAvailbilityZones",
	}
)

var versionSuffix = regexp.MustCompile(`^v[0-9]+$`)

// sdkToken is one token of the SDK: "openstack:<module>/<lowerName>:<Name>".
type sdkToken struct {
	module string
	name   string
}

func (t sdkToken) String() string {
	return fmt.Sprintf("%s:%s/%s:%s", PackageName, t.module, lowerFirst(t.name), t.name)
}

// sdkIndex: the SDK's tokens by kind, keyed by "<module>/<letters of the name>".
type sdkIndex struct {
	modules   map[string]bool
	resources map[string]sdkToken
	functions map[string]sdkToken
}

func parseSDKTokens(text string) (*sdkIndex, error) {
	index := &sdkIndex{
		modules:   map[string]bool{},
		resources: map[string]sdkToken{},
		functions: map[string]sdkToken{},
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || parts[0] != PackageName {
			return nil, fmt.Errorf("sdk-tokens.txt: malformed token %q", line)
		}
		module, _, _ := strings.Cut(parts[1], "/")
		token := sdkToken{module: module, name: parts[2]}
		index.modules[module] = true
		if strings.HasPrefix(token.name, "get") && unicode.IsUpper(rune(token.name[3])) {
			index.functions[module+"/"+letters(strings.TrimPrefix(token.name, "get"))] = token
		} else {
			index.resources[module+"/"+letters(token.name)] = token
		}
	}
	return index, nil
}

// letters: the name lower-cased, with everything but letters and digits dropped.
func letters(name string) string {
	var b strings.Builder
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func lowerFirst(name string) string {
	if name == "" {
		return name
	}
	return strings.ToLower(name[:1]) + name[1:]
}

func upperCamel(words []string) string {
	var b strings.Builder
	for _, word := range words {
		if word != "" {
			b.WriteString(strings.ToUpper(word[:1]) + word[1:])
		}
	}
	return b.String()
}

// tfName is a Terraform name taken apart: openstack_<group>_<words...>[_v<N>].
type tfName struct {
	group   string
	words   []string
	version string
}

func splitTFName(name string) (tfName, error) {
	rest, ok := strings.CutPrefix(name, PackageName+"_")
	if !ok || rest == "" {
		return tfName{}, fmt.Errorf("terraform name %q lacks the %s_ prefix", name, PackageName)
	}
	parts := strings.Split(rest, "_")
	parsed := tfName{group: parts[0], words: parts[1:]}
	if n := len(parsed.words); n > 0 && versionSuffix.MatchString(parsed.words[n-1]) {
		parsed.version = parsed.words[n-1]
		parsed.words = parsed.words[:n-1]
	}
	return parsed, nil
}

func (index *sdkIndex) moduleOf(group string) string {
	if index.modules[group] {
		return group
	}
	if module, ok := groupModules[group]; ok && index.modules[module] {
		return module
	}
	return indexModule
}

// candidates: the lookup keys (without module) for a name, most specific first.
func (n tfName) candidates() []string {
	words := strings.Join(n.words, "")
	return []string{
		words,
		words + n.version,
		n.group + words,
		n.group + words + n.version,
	}
}

func prefixGet(name string, function bool) string {
	if function {
		return "get" + name
	}
	return name
}

// mapper assigns tokens, never the same token twice.
type mapper struct {
	index *sdkIndex
	taken map[string]string
}

func (m *mapper) lookup(tf string, table map[string]sdkToken, function bool) (sdkToken, bool) {
	exceptions := resourceExceptions
	if function {
		exceptions = functionExceptions
	}
	if exception, ok := exceptions[tf]; ok {
		module, name, _ := strings.Cut(exception, "/")
		return sdkToken{module: module, name: name}, true
	}
	parsed, err := splitTFName(tf)
	if err != nil {
		return sdkToken{}, false
	}
	for _, module := range []string{m.index.moduleOf(parsed.group), indexModule} {
		for _, key := range parsed.candidates() {
			if key == "" {
				continue
			}
			if token, ok := table[module+"/"+key]; ok {
				if _, used := m.taken[token.String()]; !used {
					return token, true
				}
			}
		}
	}
	return sdkToken{}, false
}

func (m *mapper) assign(tf string, table map[string]sdkToken, function bool) (string, error) {
	token, ok := m.lookup(tf, table, function)
	if !ok {
		parsed, err := splitTFName(tf)
		if err != nil {
			return "", err
		}
		words := parsed.words
		if len(words) == 0 {
			words = []string{parsed.group}
		}
		module := m.index.moduleOf(parsed.group)
		name := upperCamel(append(append([]string{}, words...), parsed.version))
		if _, used := m.taken[(sdkToken{module: module, name: prefixGet(name, function)}).String()]; used {
			name = upperCamel(append([]string{parsed.group}, name))
		}
		token = sdkToken{module: module, name: prefixGet(name, function)}
	}
	key := token.String()
	if previous, used := m.taken[key]; used {
		return "", fmt.Errorf("%s and %s would both be %s", previous, tf, key)
	}
	m.taken[key] = tf
	return key, nil
}

// Tokens maps every resource and data source name to its Pulumi token.
func Tokens(resources, dataSources []string) (map[string]string, map[string]string, error) {
	index, err := parseSDKTokens(sdkTokensText)
	if err != nil {
		return nil, nil, err
	}
	m := &mapper{index: index, taken: map[string]string{}}
	assignAll := func(names []string, table map[string]sdkToken, function bool) (map[string]string, error) {
		// Names whose group is the module itself choose first, so that a short group
		// (openstack_lb_flavor_v2) never takes the token of the full one.
		sorted := append([]string{}, names...)
		exact := func(name string) bool {
			parsed, err := splitTFName(name)
			return err == nil && index.modules[parsed.group]
		}
		sort.Slice(sorted, func(i, j int) bool {
			if exact(sorted[i]) != exact(sorted[j]) {
				return exact(sorted[i])
			}
			return sorted[i] < sorted[j]
		})
		out := make(map[string]string, len(sorted))
		for _, name := range sorted {
			tok, err := m.assign(name, table, function)
			if err != nil {
				return nil, err
			}
			out[name] = tok
		}
		return out, nil
	}
	resourceTokens, err := assignAll(resources, index.resources, false)
	if err != nil {
		return nil, nil, err
	}
	functionTokens, err := assignAll(dataSources, index.functions, true)
	if err != nil {
		return nil, nil, err
	}
	return resourceTokens, functionTokens, nil
}
