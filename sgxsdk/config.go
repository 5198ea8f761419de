package sgxsdk

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrConfig is wrapped by every Enclave.config.xml error.
var ErrConfig = errors.New("sgxsdk: enclave config")

// Config holds the values of an Enclave.config.xml, with the SDK 2.6
// signer's defaults for keys the file does not set. Set records which keys
// the file set (some rules depend on it, as in the SDK).
type Config struct {
	ProdID, ISVSVN                           uint64
	ReleaseType, IntelSigned                 uint64
	ProvisionKey, LaunchKey, DisableDebug    uint64
	HW                                       uint64
	TCSNum, TCSMaxNum, TCSMinPool, TCSPolicy uint64
	StackMaxSize, StackMinSize               uint64
	HeapMaxSize, HeapMinSize, HeapInitSize   uint64
	RsrvMaxSize, RsrvMinSize, RsrvInitSize   uint64
	MiscSelect, MiscMask                     uint64
	EnableKSS                                uint64
	ISVFamilyIDH, ISVFamilyIDL               uint64
	ISVExtProdIDH, ISVExtProdIDL             uint64

	Set map[string]bool
}

// configKey describes one key the SDK 2.6 signer accepts: its limits and
// default (sdk/sign_tool/SignTool/sign_tool.cpp).
type configKey struct {
	name     string
	min, max uint64
	def      uint64
	field    func(*Config) *uint64
}

var configKeys = []configKey{
	{"ProdID", 0, 0xFFFF, 0, func(c *Config) *uint64 { return &c.ProdID }},
	{"ISVSVN", 0, 0xFFFF, 0, func(c *Config) *uint64 { return &c.ISVSVN }},
	{"ReleaseType", 0, 1, 0, func(c *Config) *uint64 { return &c.ReleaseType }},
	{"IntelSigned", 0, 1, 0, func(c *Config) *uint64 { return &c.IntelSigned }},
	{"ProvisionKey", 0, 1, 0, func(c *Config) *uint64 { return &c.ProvisionKey }},
	{"LaunchKey", 0, 1, 0, func(c *Config) *uint64 { return &c.LaunchKey }},
	{"DisableDebug", 0, 1, 0, func(c *Config) *uint64 { return &c.DisableDebug }},
	{"HW", 0, 0x10, 0, func(c *Config) *uint64 { return &c.HW }},
	{"TCSNum", 1, 0xFFFFFFFF, 1, func(c *Config) *uint64 { return &c.TCSNum }},
	{"TCSMaxNum", 1, 0xFFFFFFFF, 1, func(c *Config) *uint64 { return &c.TCSMaxNum }},
	{"TCSMinPool", 0, 0xFFFFFFFF, 1, func(c *Config) *uint64 { return &c.TCSMinPool }},
	{"TCSPolicy", 0, 1, 1, func(c *Config) *uint64 { return &c.TCSPolicy }},
	{"StackMaxSize", 0x2000, 0x1FFFFFFFFF, 0x40000, func(c *Config) *uint64 { return &c.StackMaxSize }},
	{"StackMinSize", 0x2000, 0x1FFFFFFFFF, 0x2000, func(c *Config) *uint64 { return &c.StackMinSize }},
	{"HeapMaxSize", 0, 0x1FFFFFFFFF, 0x1000000, func(c *Config) *uint64 { return &c.HeapMaxSize }},
	{"HeapMinSize", 0, 0x1FFFFFFFFF, 0x1000, func(c *Config) *uint64 { return &c.HeapMinSize }},
	{"HeapInitSize", 0, 0x1FFFFFFFFF, 0x1000, func(c *Config) *uint64 { return &c.HeapInitSize }},
	{"RsrvMaxSize", 0, 0x1FFFFFFFFF, 0, func(c *Config) *uint64 { return &c.RsrvMaxSize }},
	{"RsrvMinSize", 0, 0x1FFFFFFFFF, 0, func(c *Config) *uint64 { return &c.RsrvMinSize }},
	{"RsrvInitSize", 0, 0x1FFFFFFFFF, 0, func(c *Config) *uint64 { return &c.RsrvInitSize }},
	{"MiscSelect", 0, 0xFFFFFFFF, 0, func(c *Config) *uint64 { return &c.MiscSelect }},
	{"MiscMask", 0, 0xFFFFFFFF, 0xFFFFFFFF, func(c *Config) *uint64 { return &c.MiscMask }},
	{"EnableKSS", 0, 1, 0, func(c *Config) *uint64 { return &c.EnableKSS }},
	{"ISVFAMILYID_H", 0, ^uint64(0), 0, func(c *Config) *uint64 { return &c.ISVFamilyIDH }},
	{"ISVFAMILYID_L", 0, ^uint64(0), 0, func(c *Config) *uint64 { return &c.ISVFamilyIDL }},
	{"ISVEXTPRODID_H", 0, ^uint64(0), 0, func(c *Config) *uint64 { return &c.ISVExtProdIDH }},
	{"ISVEXTPRODID_L", 0, ^uint64(0), 0, func(c *Config) *uint64 { return &c.ISVExtProdIDL }},
}

// DefaultConfig returns the signer's defaults (what signing without -config
// uses): 16 MiB heap, 256 KiB stack, one TCS, UNBIND policy.
func DefaultConfig() *Config {
	c := &Config{Set: map[string]bool{}}
	for _, k := range configKeys {
		*k.field(c) = k.def
	}
	return c
}

// ParseConfig parses an Enclave.config.xml with the SDK signer's rules: an
// <EnclaveConfiguration> root with no text, child elements without
// attributes, each a known key at most once, with a non-negative integer
// (decimal, 0x hex or 0 octal, as strtoull base 0) within the key's limits.
// The cross-key rules are checked too (see Check).
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	var cur string
	var text strings.Builder
	rootSeen := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: XML: %v", ErrConfig, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if rootSeen {
					return nil, fmt.Errorf("%w: more than one root element", ErrConfig)
				}
				rootSeen = true
				if t.Name.Local != "EnclaveConfiguration" {
					return nil, fmt.Errorf("%w: root element <%s>, want <EnclaveConfiguration>", ErrConfig, t.Name.Local)
				}
			case 2:
				if len(t.Attr) != 0 {
					return nil, fmt.Errorf("%w: <%s> has attributes; keys take none", ErrConfig, t.Name.Local)
				}
				cur = t.Name.Local
				text.Reset()
			default:
				return nil, fmt.Errorf("%w: <%s> nested inside <%s>", ErrConfig, t.Name.Local, cur)
			}
		case xml.EndElement:
			if depth == 2 {
				if err := c.set(cur, text.String()); err != nil {
					return nil, err
				}
			}
			depth--
		case xml.CharData:
			switch depth {
			case 1:
				if strings.TrimSpace(string(t)) != "" {
					return nil, fmt.Errorf("%w: text %q directly inside <EnclaveConfiguration>", ErrConfig, strings.TrimSpace(string(t)))
				}
			case 2:
				text.Write(t)
			case 0:
				if strings.TrimSpace(string(t)) != "" {
					return nil, fmt.Errorf("%w: text outside the root element", ErrConfig)
				}
			}
		}
	}
	if !rootSeen {
		return nil, fmt.Errorf("%w: no <EnclaveConfiguration> element", ErrConfig)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) set(name, text string) error {
	var key *configKey
	for i := range configKeys {
		if configKeys[i].name == name {
			key = &configKeys[i]
		}
	}
	if key == nil {
		return fmt.Errorf("%w: unknown key <%s>", ErrConfig, name)
	}
	if c.Set[name] {
		return fmt.Errorf("%w: <%s> is set twice", ErrConfig, name)
	}
	s := strings.TrimLeft(text, " \t\r\n")
	if s == "" {
		return fmt.Errorf("%w: <%s> has no value", ErrConfig, name)
	}
	if strings.Contains(s, "-") {
		return fmt.Errorf("%w: <%s> value %q: negative values are not allowed", ErrConfig, name, s)
	}
	num := strings.TrimPrefix(s, "+")
	lower := strings.ToLower(num)
	// strtoull(base 0) knows decimal, 0x hex and 0 octal, not Go's 0b/0o
	// prefixes or digit separators.
	v, err := strconv.ParseUint(num, 0, 64)
	if err != nil || strings.Contains(s, "_") || strings.HasPrefix(lower, "0b") || strings.HasPrefix(lower, "0o") {
		return fmt.Errorf("%w: <%s> value %q is not a number", ErrConfig, name, s)
	}
	if v < key.min || v > key.max {
		return fmt.Errorf("%w: <%s> value %#x out of range [%#x, %#x]", ErrConfig, name, v, key.min, key.max)
	}
	c.Set[name] = true
	*key.field(c) = v
	return nil
}

// Check applies the signer's rules across keys
// (CMetadata::check_xml_parameter).
func (c *Config) Check() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...)) }
	if c.StackMaxSize%pageSize != 0 || c.StackMinSize%pageSize != 0 {
		return bad("StackMaxSize %#x and StackMinSize %#x must be page-aligned", c.StackMaxSize, c.StackMinSize)
	}
	if c.StackMinSize > c.StackMaxSize {
		return bad("StackMinSize %#x exceeds StackMaxSize %#x", c.StackMinSize, c.StackMaxSize)
	}
	if c.HeapMaxSize%pageSize != 0 || c.HeapMinSize%pageSize != 0 || c.HeapInitSize%pageSize != 0 {
		return bad("heap sizes (max %#x, min %#x, init %#x) must be page-aligned", c.HeapMaxSize, c.HeapMinSize, c.HeapInitSize)
	}
	if c.Set["HeapInitSize"] {
		if c.HeapInitSize > c.HeapMaxSize {
			return bad("HeapInitSize %#x exceeds HeapMaxSize %#x", c.HeapInitSize, c.HeapMaxSize)
		}
		if c.HeapMinSize > c.HeapInitSize {
			return bad("HeapMinSize %#x exceeds HeapInitSize %#x", c.HeapMinSize, c.HeapInitSize)
		}
	} else if c.HeapMinSize > c.HeapMaxSize {
		return bad("HeapMinSize %#x exceeds HeapMaxSize %#x", c.HeapMinSize, c.HeapMaxSize)
	}
	if c.RsrvMaxSize%pageSize != 0 || c.RsrvMinSize%pageSize != 0 || c.RsrvInitSize%pageSize != 0 {
		return bad("reserved memory sizes must be page-aligned")
	}
	if c.Set["RsrvInitSize"] {
		if c.RsrvInitSize > c.RsrvMaxSize {
			return bad("RsrvInitSize %#x exceeds RsrvMaxSize %#x", c.RsrvInitSize, c.RsrvMaxSize)
		}
		if c.RsrvMinSize > c.RsrvInitSize {
			return bad("RsrvMinSize %#x exceeds RsrvInitSize %#x", c.RsrvMinSize, c.RsrvInitSize)
		}
	} else if c.RsrvMinSize > c.RsrvMaxSize {
		return bad("RsrvMinSize %#x exceeds RsrvMaxSize %#x", c.RsrvMinSize, c.RsrvMaxSize)
	}
	if (c.HW == 0) != (c.LaunchKey == 0) {
		return bad("HW and LaunchKey must be both zero (an ordinary enclave) or both set (a launch enclave)")
	}
	if c.Set["TCSMaxNum"] {
		if c.TCSMaxNum < c.TCSNum {
			return bad("TCSMaxNum %d is less than TCSNum %d", c.TCSMaxNum, c.TCSNum)
		}
		if c.Set["TCSMinPool"] && c.TCSMinPool > c.TCSMaxNum {
			return bad("TCSMinPool %d exceeds TCSMaxNum %d", c.TCSMinPool, c.TCSMaxNum)
		}
	} else if c.Set["TCSMinPool"] && c.TCSMinPool > c.TCSNum {
		return bad("TCSMinPool %d exceeds TCSNum %d", c.TCSMinPool, c.TCSNum)
	}
	if (c.ISVExtProdIDH|c.ISVExtProdIDL|c.ISVFamilyIDH|c.ISVFamilyIDL) != 0 && c.EnableKSS == 0 {
		return bad("ISVEXTPRODID/ISVFAMILYID need EnableKSS set to 1")
	}
	return nil
}

// heapInit, tcsMax and rsrvInit apply the SDK's "if not set" rules.
func (c *Config) heapInit() uint64 {
	if c.Set["HeapInitSize"] {
		return c.HeapInitSize
	}
	return c.HeapMaxSize
}

func (c *Config) rsrvInit() uint64 {
	if c.Set["RsrvInitSize"] {
		return c.RsrvInitSize
	}
	return c.RsrvMaxSize
}

func (c *Config) tcsMax() uint64 {
	if c.Set["TCSMaxNum"] {
		return c.TCSMaxNum
	}
	return c.TCSNum
}
