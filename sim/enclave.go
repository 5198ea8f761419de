package sim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/internal/cmac"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// ErrEINIT is wrapped by every EINIT failure; the message names the check.
var ErrEINIT = errors.New("sim: EINIT")

// ErrECREATE is wrapped when the enclave could not be created.
var ErrECREATE = errors.New("sim: ECREATE")

// Identity is what SGX attests about an enclave (sgx.Identity).
type Identity = sgx.Identity

// Enclave is a loaded, initialised enclave on a simulated platform.
type Enclave struct {
	Identity
	platform *Platform
	mage     []byte // the loaded .sgx_mage section, nil without one
	name     string
	gramine  *GramineInfo
}

// GramineInfo is what a Gramine enclave's manifest tells its program about
// its MAGE group: the table (loader.env.MAGE_TABLE) and the constants its
// suffix depends on.
type GramineInfo struct {
	Payload    []byte // the decoded MAGE_TABLE; nil if the manifest has none
	MaxThreads int
	EDMM       bool
	Env        map[string]string // loader.env values given as strings
}

// Gramine returns the Gramine enclave's manifest information, or nil for an
// SDK enclave.
func (e *Enclave) Gramine() *GramineInfo { return e.gramine }

// LoadGramine loads a Gramine enclave as Gramine's loader does: the
// manifest measured first (as is), then the SSA, TCS, TLS, stacks, libpal
// and free heap; then EINIT's checks against the .sig (its SIGSTRUCT).
func (p *Platform) LoadGramine(ctx context.Context, manifest, libpal, sig []byte, opts *LoadOptions) (*Enclave, error) {
	if opts == nil {
		opts = &LoadOptions{}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := gramine.ParseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	pal, err := gramine.ParseLibpal(libpal)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	en, err := gramine.NewEnclave(m, pal)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	css, err := sgx.ParseSigstruct(sig)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	mr := en.Measure()
	// SECS as Gramine's loader builds it: the SIGSTRUCT's attributes (DEBUG
	// from the manifest), the platform's XSAVE features under the mask.
	secs := sgx.Attributes{Flags: css.Attributes.Flags, Xfrm: css.Attributes.Xfrm & PlatformXFRM}
	if opts.Debug {
		secs.Flags |= sgx.AttrDebug
	}
	if err := einit(css, mr, secs, css.MiscSelect); err != nil {
		return nil, err
	}
	info := &GramineInfo{MaxThreads: m.MaxThreads, EDMM: m.EDMM, Env: map[string]string{}}
	loader, _ := m.Tree["loader"].(map[string]any)
	envT, _ := loader["env"].(map[string]any)
	for k, v := range envT {
		if s, ok := v.(string); ok {
			info.Env[k] = s
		}
	}
	if t, ok := info.Env["MAGE_TABLE"]; ok {
		if info.Payload, err = hex.DecodeString(t); err != nil {
			return nil, fmt.Errorf("sim: loading: loader.env.MAGE_TABLE is not hex")
		}
	}
	return &Enclave{
		platform: p,
		gramine:  info,
		Identity: Identity{
			MRENCLAVE:  mr,
			MRSIGNER:   css.MRSigner(),
			Attributes: sgx.Attributes{Flags: secs.Flags | sgx.AttrInit, Xfrm: secs.Xfrm},
			MiscSelect: css.MiscSelect,
			ISVProdID:  css.ISVProdID,
			ISVSVN:     css.ISVSVN,
		},
	}, nil
}

// LoadOptions tune loading.
type LoadOptions struct {
	// Debug launches the enclave in debug mode (ATTRIBUTES.DEBUG), which
	// EINIT allows only if the SIGSTRUCT does not forbid it (DisableDebug).
	Debug bool
	// ConfigID and ConfigSVN are given at ECREATE with KSS.
	ConfigID  [sgx.ConfigIDSize]byte
	ConfigSVN uint16
}

// Load loads a signed SDK enclave from its file alone, as the MAGE-modified
// untrusted runtime does: it parses the metadata, replays the segments and
// layout (the .sgx_mage section last) to compute MRENCLAVE, and runs EINIT's
// checks against the SIGSTRUCT.
func (p *Platform) Load(ctx context.Context, file []byte, opts *LoadOptions) (*Enclave, error) {
	if opts == nil {
		opts = &LoadOptions{}
	}
	s, err := sgxsdk.ParseSigned(file)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	meta, err := s.Primary()
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	mr, err := s.Measure(ctx)
	if err != nil {
		return nil, fmt.Errorf("sim: loading: %w", err)
	}
	css := meta.Sigstruct
	// SECS as the runtime builds it: attributes from the metadata, the
	// platform's XSAVE features, DEBUG if asked for.
	secs := sgx.Attributes{Flags: meta.Attributes.Flags, Xfrm: meta.Attributes.Xfrm & PlatformXFRM}
	if opts.Debug {
		secs.Flags |= sgx.AttrDebug
	}
	// ECREATE (SDM Vol. 3D, SGX Instruction References, ECREATE): #GP if
	// CONFIGID or CONFIGSVN is set without ATTRIBUTES.KSS.
	if secs.Flags&sgx.AttrKSS == 0 && (opts.ConfigID != [sgx.ConfigIDSize]byte{} || opts.ConfigSVN != 0) {
		return nil, fmt.Errorf("%w: CONFIGID/CONFIGSVN given for an enclave without the KSS attribute", ErrECREATE)
	}
	misc := css.MiscSelect
	if err := einit(css, mr, secs, misc); err != nil {
		return nil, err
	}
	e := &Enclave{
		platform: p,
		mage:     slices.Clone(s.ELF.MageSection()),
		Identity: Identity{
			MRENCLAVE:    mr,
			MRSIGNER:     css.MRSigner(),
			Attributes:   sgx.Attributes{Flags: secs.Flags | sgx.AttrInit, Xfrm: secs.Xfrm},
			MiscSelect:   misc,
			ISVProdID:    css.ISVProdID,
			ISVSVN:       css.ISVSVN,
			ConfigID:     opts.ConfigID,
			ConfigSVN:    opts.ConfigSVN,
			ISVExtProdID: css.ISVExtProdID,
			ISVFamilyID:  css.ISVFamilyID,
		},
	}
	return e, nil
}

// einit runs the checks EINIT makes before initialising an enclave.
func einit(css *sgx.Sigstruct, mr sgx.Measurement, secs sgx.Attributes, misc uint32) error {
	if err := css.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrEINIT, err)
	}
	if sgx.Measurement(css.EnclaveHash) != mr {
		return fmt.Errorf("%w: ENCLAVEHASH %x does not match the measured MRENCLAVE %s", ErrEINIT, css.EnclaveHash, mr)
	}
	if css.Attributes.Flags&sgx.AttrInit != 0 {
		return fmt.Errorf("%w: SIGSTRUCT.ATTRIBUTES sets INIT", ErrEINIT)
	}
	m := css.AttributeMask
	if css.Attributes.Flags&m.Flags != secs.Flags&m.Flags || css.Attributes.Xfrm&m.Xfrm != secs.Xfrm&m.Xfrm {
		return fmt.Errorf("%w: ATTRIBUTES %v do not match the SIGSTRUCT's %v under the mask %v (a DEBUG launch of an enclave signed with DisableDebug?)", ErrEINIT, secs, css.Attributes, m)
	}
	if css.MiscSelect&css.MiscMask != misc&css.MiscMask {
		return fmt.Errorf("%w: MISCSELECT %#x does not match the SIGSTRUCT's %#x under the mask %#x", ErrEINIT, misc, css.MiscSelect, css.MiscMask)
	}
	return nil
}

// Platform returns the platform the enclave runs on.
func (e *Enclave) Platform() *Platform { return e.platform }

// MageSection returns the bytes of the enclave's loaded .sgx_mage section
// (measured into its MRENCLAVE), or nil if it has none.
func (e *Enclave) MageSection() []byte { return e.mage }

// TargetInfo returns the enclave's TARGETINFO, for others to make reports
// it can verify.
func (e *Enclave) TargetInfo() *sgx.TargetInfo {
	return &sgx.TargetInfo{
		MRENCLAVE:  e.MRENCLAVE,
		Attributes: e.Attributes,
		MiscSelect: e.MiscSelect,
		ConfigID:   e.ConfigID,
		ConfigSVN:  e.ConfigSVN,
	}
}

// body returns the enclave's report body with the given report data.
func (e *Enclave) body(data [sgx.ReportDataSize]byte) sgx.ReportBody {
	b := sgx.ReportBody{
		MiscSelect:   e.MiscSelect,
		ISVExtProdID: e.ISVExtProdID,
		Attributes:   e.Attributes,
		MRENCLAVE:    e.MRENCLAVE,
		MRSIGNER:     e.MRSIGNER,
		ConfigID:     e.ConfigID,
		ISVProdID:    e.ISVProdID,
		ISVSVN:       e.ISVSVN,
		ConfigSVN:    e.ConfigSVN,
		ISVFamilyID:  e.ISVFamilyID,
		ReportData:   data,
	}
	copy(b.CPUSVN[:], e.platform.state.CPUSVN)
	return b
}

// Report is EREPORT: a REPORT of this enclave carrying data, MACed with the
// report key of the target enclave.
func (e *Enclave) Report(target *sgx.TargetInfo, data [sgx.ReportDataSize]byte) (*sgx.Report, error) {
	if target.Reserved1 != [2]byte{} || target.Reserved2 != [8]byte{} || target.Reserved3 != [384]byte{} {
		return nil, fmt.Errorf("%w: TARGETINFO", ErrInvalidReserved)
	}
	r := &sgx.Report{Body: e.body(data)}
	copy(r.KeyID[:], e.platform.state.ReportKeyID)
	key := e.platform.reportKey(target, r.KeyID)
	mac, _ := cmac.Sum(key[:], r.Body.Marshal())
	r.MAC = mac
	return r, nil
}

// VerifyReport checks that r was made on this platform for this enclave
// (the MAC under this enclave's report key, as sgx_verify_report does with
// EGETKEY), and returns its body.
func (e *Enclave) VerifyReport(r *sgx.Report) (*sgx.ReportBody, error) {
	key, err := e.GetKey(&sgx.KeyRequest{KeyName: sgx.KeyReport, KeyID: r.KeyID})
	if err != nil {
		return nil, err
	}
	mac, _ := cmac.Sum(key[:], r.Body.Marshal())
	if !cmac.Equal(mac[:], r.MAC[:]) {
		return nil, ErrReportMAC
	}
	b := r.Body
	return &b, nil
}

// GetKey is EGETKEY: report and seal keys (and, with the right attributes,
// provisioning keys) derived from the platform secret and the enclave's
// identity as the request's policy selects.
func (e *Enclave) GetKey(req *sgx.KeyRequest) ([16]byte, error) {
	return e.platform.getKey(e, req)
}

// CPUSVN returns the platform's CPUSVN.
func (p *Platform) CPUSVN() (c [16]byte) {
	copy(c[:], p.state.CPUSVN)
	return c
}
