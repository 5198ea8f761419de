package dcap_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

// TestValidate: each expected value, met and unmet, on the real quote
// verified with its collateral.
func TestValidate(t *testing.T) {
	raw, _, col := phala(t)
	res, err := dcap.Verify(raw, col, dcap.Options{Time: inWindow, Accept: acceptCfg})
	if err != nil {
		t.Fatal(err)
	}
	mr, _ := sgx.ParseMeasurement("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")
	signer, _ := sgx.ParseMeasurement("815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6")
	zero, one := uint16(0), uint16(1)
	var rd [64]byte
	copy(rd[:], "Hello, world!")
	cases := []struct {
		name string
		opts dcap.ValidateOptions
		fail string // "" if it must pass, else a word of the error
	}{
		{"nothing expected", dcap.ValidateOptions{}, ""},
		{"MRENCLAVE", dcap.ValidateOptions{MRENCLAVE: []sgx.Measurement{{1}, mr}}, ""},
		{"other MRENCLAVE", dcap.ValidateOptions{MRENCLAVE: []sgx.Measurement{{1}}}, "MRENCLAVE"},
		{"MRSIGNER", dcap.ValidateOptions{MRSIGNER: []sgx.Measurement{signer}}, ""},
		{"other MRSIGNER", dcap.ValidateOptions{MRSIGNER: []sgx.Measurement{mr}}, "MRSIGNER"},
		{"ISVPRODID", dcap.ValidateOptions{ISVProdID: &zero}, ""},
		{"other ISVPRODID", dcap.ValidateOptions{ISVProdID: &one}, "ISVPRODID"},
		{"min ISVSVN", dcap.ValidateOptions{MinISVSVN: 1}, "ISVSVN"},
		{"report data", dcap.ValidateOptions{ReportData: rd[:]}, ""},
		{"other report data", dcap.ValidateOptions{ReportData: make([]byte, 64)}, "report data"},
		{"report data prefix", dcap.ValidateOptions{ReportDataPrefix: []byte("Hello")}, ""},
		{"other prefix", dcap.ValidateOptions{ReportDataPrefix: []byte("Bye")}, "start with"},
		{"CONFIGSVN", dcap.ValidateOptions{MinConfigSVN: 1}, "CONFIGSVN"},
		{"ISVFAMILYID", dcap.ValidateOptions{ISVFamilyID: &[16]byte{1}}, "ISVFAMILYID"},
		{"TCB evaluation 17", dcap.ValidateOptions{MinTCBEvaluationDataNumber: 17}, ""},
		{"TCB evaluation 18", dcap.ValidateOptions{MinTCBEvaluationDataNumber: 18}, "evaluation"},
		{"status", dcap.ValidateOptions{AcceptStatuses: []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}}, ""},
		{"UpToDate only", dcap.ValidateOptions{AcceptStatuses: []dcap.TCBStatus{dcap.UpToDate}}, "not accepted"},
		{"both advisories allowed", dcap.ValidateOptions{AcceptAdvisories: []string{"INTEL-SA-00289", "INTEL-SA-00615"}}, ""},
		{"only INTEL-SA-00615", dcap.ValidateOptions{AcceptAdvisories: []string{"INTEL-SA-00615"}}, "INTEL-SA-00289"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := *res
			err := dcap.Validate(&r, c.opts)
			switch {
			case c.fail == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.fail != "" && (!errors.Is(err, dcap.ErrValidation) || !strings.Contains(err.Error(), c.fail)):
				t.Errorf("%v, want ErrValidation naming %q", err, c.fail)
			}
			if last := r.Checks[len(r.Checks)-1]; last.Name != dcap.CheckValidation || (last.Status == dcap.Pass) != (c.fail == "") {
				t.Errorf("checks end with %+v", last)
			}
		})
	}
	// DEBUG is refused unless allowed.
	dbg := *res
	dbg.Enclave.Attributes.Flags |= sgx.AttrDebug
	if err := dcap.Validate(&dbg, dcap.ValidateOptions{}); err == nil || !strings.Contains(err.Error(), "DEBUG") {
		t.Errorf("debug enclave: %v", err)
	}
	if err := dcap.Validate(&dbg, dcap.ValidateOptions{AllowDebug: true}); err != nil {
		t.Errorf("debug enclave allowed: %v", err)
	}
}
