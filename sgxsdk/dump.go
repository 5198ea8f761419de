package sgxsdk

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
)

// Dump writes the metadata of a signed enclave in the text format of
// "sgx_sign dump": the primary metadata, each compatible copy, and
// MRSIGNER.
func (s *Signed) Dump(w io.Writer) error {
	var b strings.Builder
	b.WriteString("=============================\nThe metadata information:\n=============================\n")
	dumpMetadata(&b, s.Metadata[0])
	for i, m := range s.Metadata[1:] {
		if i == 0 {
			b.WriteString("\n\n\n====================================\nThe compatible metadata information: \n====================================\n")
		}
		fmt.Fprintf(&b, "\nCompatible metadata number %d:\n------------------------------\n", i+1)
		dumpMetadata(&b, m)
	}
	last := s.Metadata[len(s.Metadata)-1]
	signer := sha256.Sum256(last.Sigstruct.Modulus[:])
	b.WriteString("\n\n===================\nThe mrsigner value:\n===================\n")
	dumpArray(&b, "mrsigner->value", signer[:])
	_, err := io.WriteString(w, b.String())
	return err
}

func dumpArray(b *strings.Builder, name string, v []byte) {
	b.WriteString(name + ":")
	for i, c := range v {
		if i%16 == 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(b, "0x%02x ", c)
	}
	b.WriteByte('\n')
}

func dumpMetadata(b *strings.Builder, m *Metadata) {
	el := func(name string, v uint64) { fmt.Fprintf(b, "metadata->%s: %#x\n", name, v) }
	arr := func(name string, v []byte) { dumpArray(b, "metadata->"+name, v) }
	css := m.Sigstruct
	el("magic_num", MetadataMagic)
	el("version", m.Version)
	el("size", uint64(m.Size()))
	el("tcs_policy", uint64(m.TCSPolicy))
	el("ssa_frame_size", uint64(m.SSAFrameSize))
	el("max_save_buffer_size", uint64(m.MaxSaveBufferSize))
	el("desired_misc_select", uint64(m.DesiredMiscSelect))
	el("enclave_size", m.EnclaveSize)
	el("attributes.flags", m.Attributes.Flags)
	el("attributes.xfrm", m.Attributes.Xfrm)
	arr("enclave_css.header.header", css.Header[:])
	el("enclave_css.header.type", uint64(css.Type))
	el("enclave_css.header.module_vendor", uint64(css.ModuleVendor))
	el("enclave_css.header.date", uint64(css.Date))
	arr("enclave_css.header.header2", css.Header2[:])
	el("enclave_css.header.hw_version", uint64(css.HWVersion))
	arr("enclave_css.key.modulus", css.Modulus[:])
	var exp [4]byte
	exp[0], exp[1], exp[2], exp[3] = byte(css.Exponent), byte(css.Exponent>>8), byte(css.Exponent>>16), byte(css.Exponent>>24)
	arr("enclave_css.key.exponent", exp[:])
	arr("enclave_css.key.signature", css.Signature[:])
	el("enclave_css.body.misc_select", uint64(css.MiscSelect))
	el("enclave_css.body.misc_mask", uint64(css.MiscMask))
	el("enclave_css.body.attributes.flags", css.Attributes.Flags)
	el("enclave_css.body.attributes.xfrm", css.Attributes.Xfrm)
	el("enclave_css.body.attribute_mask.flags", css.AttributeMask.Flags)
	el("enclave_css.body.attribute_mask.xfrm", css.AttributeMask.Xfrm)
	arr("enclave_css.body.enclave_hash.m", css.EnclaveHash[:])
	el("enclave_css.body.isv_prod_id", uint64(css.ISVProdID))
	el("enclave_css.body.isv_svn", uint64(css.ISVSVN))
	arr("enclave_css.buffer.q1", css.Q1[:])
	arr("enclave_css.buffer.q2", css.Q2[:])
}
