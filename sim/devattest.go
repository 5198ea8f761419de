package sim

import (
	"fmt"
	"sync"

	"github.com/magesgx/mage/sgx"
)

// AttestationDevice behaves as Gramine's /dev/attestation inside a
// simulated Gramine enclave (libos/src/fs/dev/attestation.c): whole files
// read and written by name. user_report_data and target_info keep what was
// written last (a short write is zero-padded); report and quote are
// computed when read (Gramine computes them at open) from those two;
// target_info, never written, targets the enclave itself.
type AttestationDevice struct {
	e  *Enclave
	mu sync.Mutex
	ti []byte
	rd [sgx.ReportDataSize]byte
}

// NewAttestationDevice returns the device of enclave e.
func NewAttestationDevice(e *Enclave) *AttestationDevice { return &AttestationDevice{e: e} }

// ReadFile reads one of the device's files.
func (d *AttestationDevice) ReadFile(name string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch name {
	case "attestation_type":
		return []byte("dcap"), nil
	case "my_target_info":
		return d.e.TargetInfo().Marshal(), nil
	case "target_info":
		if d.ti == nil {
			return d.e.TargetInfo().Marshal(), nil
		}
		return append([]byte(nil), d.ti...), nil
	case "user_report_data":
		return append([]byte(nil), d.rd[:]...), nil
	case "report":
		r, err := d.report()
		if err != nil {
			return nil, err
		}
		return r.Marshal(), nil
	case "quote":
		// Gramine targets the quoting enclave itself for a quote.
		r, err := d.e.Report(d.e.platform.QETargetInfo(), d.rd)
		if err != nil {
			return nil, err
		}
		return d.e.platform.Quote(r)
	}
	return nil, fmt.Errorf("sim: /dev/attestation/%s: no such file", name)
}

func (d *AttestationDevice) report() (*sgx.Report, error) {
	ti := d.e.TargetInfo()
	if d.ti != nil {
		var err error
		if ti, err = sgx.ParseTargetInfo(d.ti); err != nil {
			return nil, fmt.Errorf("sim: /dev/attestation/target_info: %w", err)
		}
	}
	return d.e.Report(ti, d.rd)
}

// WriteFile writes one of the device's writable files.
func (d *AttestationDevice) WriteFile(name string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch name {
	case "user_report_data":
		if len(data) > sgx.ReportDataSize {
			return fmt.Errorf("sim: /dev/attestation/user_report_data: %d bytes, at most %d", len(data), sgx.ReportDataSize)
		}
		d.rd = [sgx.ReportDataSize]byte{}
		copy(d.rd[:], data)
		return nil
	case "target_info":
		if len(data) > sgx.TargetInfoSize {
			return fmt.Errorf("sim: /dev/attestation/target_info: %d bytes, at most %d", len(data), sgx.TargetInfoSize)
		}
		d.ti = make([]byte, sgx.TargetInfoSize)
		copy(d.ti, data)
		return nil
	}
	return fmt.Errorf("sim: /dev/attestation/%s: not writable", name)
}
