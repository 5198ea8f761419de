package gramine

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// FlattenManifest re-emits a parsed manifest as root-level dotted keys
// with no table headers, one key a line, sorted: the only shape in which
// a line appended at the end (the MAGE table) stays at the root for every
// TOML parser Gramine uses (tomlc99 puts a dotted key after a [table]
// header inside that table, and refuses [loader.env] after dotted
// loader.env.X keys). Tables in arrays become inline tables. The values
// are encoded by go-toml, so the result means exactly what tree means.
func FlattenManifest(tree map[string]any) ([]byte, error) {
	var b bytes.Buffer
	if err := flatten(&b, nil, tree); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// isBareKey reports whether k may be written unquoted (TOML's A-Za-z0-9_-).
func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func keyText(k string) (string, error) {
	if isBareKey(k) {
		return k, nil
	}
	out, err := toml.Marshal(map[string]string{"k": k})
	if err != nil {
		return "", err
	}
	// `k = '…'` or `k = "…"`: the quoted string is a valid quoted key.
	return strings.TrimSpace(strings.TrimPrefix(string(out), "k = ")), nil
}

func valueText(v any) (string, error) {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.SetTablesInline(true)
	enc.SetArraysMultiline(false)
	if err := enc.Encode(map[string]any{"v": v}); err != nil {
		return "", err
	}
	s := strings.TrimSuffix(b.String(), "\n")
	if !strings.HasPrefix(s, "v = ") || strings.Contains(s, "\n") {
		return "", fmt.Errorf("%w: a value does not encode on one line", ErrManifest)
	}
	return strings.TrimPrefix(s, "v = "), nil
}

func flatten(b *bytes.Buffer, path []string, t map[string]any) error {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kt, err := keyText(k)
		if err != nil {
			return err
		}
		p := append(append([]string(nil), path...), kt)
		if sub, ok := t[k].(map[string]any); ok && len(sub) > 0 {
			if err := flatten(b, p, sub); err != nil {
				return err
			}
			continue
		}
		vt, err := valueText(t[k])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrManifest, strings.Join(p, "."), err)
		}
		fmt.Fprintf(b, "%s = %s\n", strings.Join(p, "."), vt)
	}
	return nil
}

// PadToPages appends TOML comment lines (or one empty line) so that the
// text fills whole pages.
func PadToPages(text []byte) []byte {
	r := (pageSize - len(text)%pageSize) % pageSize
	for r > 0 {
		switch {
		case r == 1:
			text = append(text, '\n')
			r = 0
		default:
			n := min(r, 80)
			if r-n == 1 {
				n-- // leave room for a last line of at least two bytes
			}
			text = append(text, '#')
			text = append(text, bytes.Repeat([]byte{'#'}, n-2)...)
			text = append(text, '\n')
			r -= n
		}
	}
	return text
}
