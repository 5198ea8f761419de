package dcap

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/magesgx/mage/sgx"
)

// ErrValidation is wrapped when a verified quote does not have the values
// the relying party expects.
var ErrValidation = errors.New("dcap: quote does not have the expected values")

// CheckValidation names the validation step in Result.Checks.
const CheckValidation = "validation"

// ValidateOptions are the values a relying party expects of a quote that
// Verify (or VerifyWithoutCollateral) accepted. Validation is kept apart
// from verification, as go-sev-guest keeps validate apart from verify:
// Verify proves who signed what; Validate says whether that is what you
// wanted. Unset fields expect nothing, except DEBUG, which is refused
// unless AllowDebug is set.
type ValidateOptions struct {
	// MRENCLAVE and MRSIGNER, if not empty, list the acceptable values.
	MRENCLAVE []sgx.Measurement
	MRSIGNER  []sgx.Measurement
	// ISVProdID, if set, is the expected product ID.
	ISVProdID *uint16
	// MinISVSVN is the lowest acceptable security version.
	MinISVSVN uint16
	// ReportData, if set, is the exact 64-byte report data expected;
	// ReportDataPrefix, if set, what it must start with.
	ReportData       []byte
	ReportDataPrefix []byte
	// AllowDebug accepts an enclave with ATTRIBUTES.DEBUG (whose memory
	// its host can read): for development only.
	AllowDebug bool
	// With KSS: the expected CONFIGID, the lowest CONFIGSVN, and the
	// expected ISVEXTPRODID and ISVFAMILYID.
	ConfigID     *[sgx.ConfigIDSize]byte
	MinConfigSVN uint16
	ISVExtProdID *[16]byte
	ISVFamilyID  *[16]byte
	// MinTCBEvaluationDataNumber is the oldest acceptable TCB evaluation
	// (the lower of the TCB Info's and the QE Identity's numbers).
	MinTCBEvaluationDataNumber uint32
	// AcceptStatuses, if not empty, lists the acceptable TCB statuses.
	AcceptStatuses []TCBStatus
	// AcceptAdvisories, if not nil, allows a status other than UpToDate
	// only when every advisory it carries is listed: "SWHardeningNeeded,
	// but only for INTEL-SA-00615".
	AcceptAdvisories []string
}

// Validate checks a verified quote's Result against the expected values,
// records the outcome as the "validation" check in res.Checks, and returns
// an error wrapping ErrValidation that names the first value that differs.
func Validate(res *Result, opts ValidateOptions) error {
	if res == nil || res.Quote == nil {
		return fmt.Errorf("%w: no verified quote", ErrValidation)
	}
	err := validate(res, &opts)
	if err != nil {
		res.Checks = append(res.Checks, Check{Name: CheckValidation, Status: Fail, Detail: err.Error()})
		return err
	}
	res.Checks = append(res.Checks, Check{Name: CheckValidation, Status: Pass, Detail: "the enclave and its platform have the expected values"})
	return nil
}

func validate(res *Result, o *ValidateOptions) error {
	b := &res.Enclave
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrValidation, fmt.Sprintf(format, a...))
	}
	switch {
	case len(o.MRENCLAVE) > 0 && !slices.Contains(o.MRENCLAVE, b.MRENCLAVE):
		return bad("MRENCLAVE %s is not an expected one", b.MRENCLAVE)
	case len(o.MRSIGNER) > 0 && !slices.Contains(o.MRSIGNER, b.MRSIGNER):
		return bad("MRSIGNER %s is not an expected one", b.MRSIGNER)
	case o.ISVProdID != nil && b.ISVProdID != *o.ISVProdID:
		return bad("ISVPRODID %d, want %d", b.ISVProdID, *o.ISVProdID)
	case b.ISVSVN < o.MinISVSVN:
		return bad("ISVSVN %d is below %d", b.ISVSVN, o.MinISVSVN)
	case o.ReportData != nil && !bytes.Equal(b.ReportData[:], o.ReportData):
		return bad("report data %x is not the expected %x", b.ReportData, o.ReportData)
	case len(o.ReportDataPrefix) > len(b.ReportData) || !bytes.HasPrefix(b.ReportData[:], o.ReportDataPrefix):
		return bad("report data does not start with %x", o.ReportDataPrefix)
	case b.Attributes.Debug() && !o.AllowDebug:
		return bad("the enclave is a DEBUG enclave (its host can read its memory)")
	case o.ConfigID != nil && b.ConfigID != *o.ConfigID:
		return bad("CONFIGID %x is not the expected one", b.ConfigID)
	case b.ConfigSVN < o.MinConfigSVN:
		return bad("CONFIGSVN %d is below %d", b.ConfigSVN, o.MinConfigSVN)
	case o.ISVExtProdID != nil && b.ISVExtProdID != *o.ISVExtProdID:
		return bad("ISVEXTPRODID %x is not the expected one", b.ISVExtProdID)
	case o.ISVFamilyID != nil && b.ISVFamilyID != *o.ISVFamilyID:
		return bad("ISVFAMILYID %x is not the expected one", b.ISVFamilyID)
	}
	if o.MinTCBEvaluationDataNumber > 0 {
		if res.TCBStatus == "" {
			return bad("a minimum TCB evaluation data number needs collateral (the quote was verified without)")
		}
		if res.TCBEvaluationDataNumber < o.MinTCBEvaluationDataNumber {
			return bad("TCB evaluation data number %d is below %d", res.TCBEvaluationDataNumber, o.MinTCBEvaluationDataNumber)
		}
	}
	if len(o.AcceptStatuses) > 0 && !slices.Contains(o.AcceptStatuses, res.TCBStatus) {
		return bad("TCB status %q is not accepted (accepted: %s)", res.TCBStatus, joinStatuses(o.AcceptStatuses))
	}
	if o.AcceptAdvisories != nil && res.TCBStatus != UpToDate {
		if res.TCBStatus == "" {
			return bad("an advisory allow-list needs collateral (the quote was verified without)")
		}
		for _, id := range res.AdvisoryIDs {
			if !slices.Contains(o.AcceptAdvisories, id) {
				return bad("TCB status %s carries advisory %s, which is not accepted", res.TCBStatus, id)
			}
		}
	}
	return nil
}
