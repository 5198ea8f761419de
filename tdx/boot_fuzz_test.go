package tdx

import (
	"bytes"
	"os"
	"testing"

	"github.com/magesgx/mage/internal/ovmf"
)

// FuzzBootInputs feeds hostile kernels, ACPI tables and variable stores
// to the direct-boot measurement: no panic, the kernel is never modified,
// and a kernel's work stays bounded by its size (parsePE refuses sections
// that hold more bytes than the file).
func FuzzBootInputs(f *testing.F) {
	for _, name := range []string{"k1.efi", "k3.efi", "u1.efi"} {
		k, err := os.ReadFile("../testdata/tdx/boot/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k[:min(len(k), 8192)], []byte("RSDT\x28\x00\x00\x00"+string(make([]byte, 32))), []byte{})
	}
	g := ovmf.GUID(guidAuthVariables)
	store := append(g[:], 0x60, 0, 0, 0, 0x5a, 0xfe, 0, 0, 0, 0, 0, 0, 0xaa, 0x55, 0x3f)
	f.Add([]byte("MZ"), []byte("FACP\x24\x00\x00\x00"), store)
	f.Fuzz(func(t *testing.T, kernel, acpi, vars []byte) {
		orig := bytes.Clone(kernel)
		b := Boot{Kernel: kernel, Cmdline: "console=ttyS0", Memory: 1 << 30}
		if p, err := parsePE(kernel); err == nil {
			var total uint64
			for _, s := range p.sections {
				total += uint64(s.rawSize)
			}
			if total > uint64(len(kernel)) {
				t.Fatalf("sections of %d bytes in a %d-byte file", total, len(kernel))
			}
			authenticodeHash(kernel, p)
		}
		KernelRTMRs(b)
		b.Initrd = vars
		KernelRTMRs(b)
		if !bytes.Equal(kernel, orig) {
			t.Fatal("the kernel was modified")
		}
		if tables, err := parseACPI(acpi); err == nil {
			tableLoader(tables)
			rsdp(tables)
		}
		efiVariables(vars)
	})
}
