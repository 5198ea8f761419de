package sim

import (
	"errors"
	"testing"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// TestEGETKEYPolicy (issue 18, hole 9): EGETKEY refuses what hardware
// faults on (#GP): KEYPOLICY's reserved bits always, and its KSS-only bits
// (NOISVPRODID, CONFIGID, ISVFAMILYID, ISVEXTPRODID) in an enclave without
// KSS; an enclave with KSS gets keys for them.
func TestEGETKEYPolicy(t *testing.T) {
	p := platform(t)
	plain := load(t, p, "signed/s1_e1_cA.signed.so", nil)
	key, err := sgx.LoadSigningKey(read(t, "keys/g1_k0.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := sgxsdk.DefaultConfig()
	cfg.EnableKSS = 1
	signed, _, err := sgxsdk.Sign(read(t, "enclaves/g1_m0.so"), cfg, key, 20261205, nil)
	if err != nil {
		t.Fatal(err)
	}
	kss, err := p.Load(t.Context(), signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kss.Identity.Attributes.Flags&sgx.AttrKSS == 0 {
		t.Fatal("the KSS enclave was loaded without KSS")
	}
	req := func(name, policy uint16) *sgx.KeyRequest {
		r := &sgx.KeyRequest{KeyName: name, KeyPolicy: policy}
		copy(r.CPUSVN[:], p.state.CPUSVN)
		return r
	}
	for _, name := range []uint16{sgx.KeySeal, sgx.KeyReport} {
		for _, bit := range []uint16{0x40, 0x80, 0x100, 0x8000} {
			for _, e := range []*Enclave{plain, kss} {
				if _, err := e.GetKey(req(name, sgx.KeyPolicyMRSIGNER|bit)); !errors.Is(err, ErrInvalidKeyPolicy) {
					t.Errorf("key %d, reserved bit %#x: %v, want ErrInvalidKeyPolicy", name, bit, err)
				}
			}
		}
		for _, bit := range []uint16{sgx.KeyPolicyNoISVProdID, sgx.KeyPolicyConfigID, sgx.KeyPolicyISVFamilyID, sgx.KeyPolicyISVExtProdID} {
			if _, err := plain.GetKey(req(name, sgx.KeyPolicyMRSIGNER|bit)); !errors.Is(err, ErrInvalidKeyPolicy) {
				t.Errorf("key %d, KSS bit %#x without KSS: %v, want ErrInvalidKeyPolicy", name, bit, err)
			}
			if _, err := kss.GetKey(req(name, sgx.KeyPolicyMRSIGNER|bit)); err != nil {
				t.Errorf("key %d, KSS bit %#x with KSS: %v", name, bit, err)
			}
		}
	}
	if _, err := plain.GetKey(req(sgx.KeySeal, sgx.KeyPolicyMRENCLAVE|sgx.KeyPolicyMRSIGNER)); err != nil {
		t.Errorf("MRENCLAVE|MRSIGNER: %v", err)
	}
}
