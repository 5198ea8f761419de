package tdx_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/magesgx/mage/internal/ovmf/ovmftest"
	"github.com/magesgx/mage/tdx"
)

const bootDir = "../testdata/tdx/boot"

func readBootFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bootDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// bootVector is one line of testdata/tdx/boot/vectors.tsv: the reference's
// RTMR0 to RTMR2 for a kernel, initrd, machine and command line.
type bootVector struct {
	kernel, initrd string
	cpus           int
	memory         uint64
	rtmr           [3][48]byte
	cmdline        string
}

func bootVectors(t testing.TB) []bootVector {
	t.Helper()
	var out []bootVector
	sc := bufio.NewScanner(bytes.NewReader(readBootFile(t, "vectors.tsv")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 8 {
			t.Fatalf("vectors.tsv: %d fields in %q", len(f), sc.Text())
		}
		v := bootVector{kernel: f[0], initrd: f[1], cmdline: f[7]}
		v.cpus, _ = strconv.Atoi(f[2])
		v.memory, _ = strconv.ParseUint(f[3], 10, 64)
		for i := range 3 {
			b, err := hex.DecodeString(f[4+i])
			if err != nil || len(b) != 48 {
				t.Fatalf("vectors.tsv: RTMR%d %q", i, f[4+i])
			}
			v.rtmr[i] = [48]byte(b)
		}
		out = append(out, v)
	}
	return out
}

func (v bootVector) boot(t testing.TB) tdx.Boot {
	b := tdx.Boot{Kernel: readBootFile(t, v.kernel), Cmdline: v.cmdline, Memory: v.memory,
		ACPITables: readBootFile(t, fmt.Sprintf("acpi-%d-%d.bin.gz", v.cpus, v.memory))}
	if v.initrd != "-" {
		b.Initrd = readBootFile(t, v.initrd)
	}
	return b
}

// TestBootReference computes RTMR0 to RTMR2 of every direct boot of the
// reference's matrix (5 kernels, 3 initrds, 2 command lines, 4 machines)
// and compares them with the reference's, byte for byte.
func TestBootReference(t *testing.T) {
	fw := ovmftest.DebianOVMF(t)
	vs := bootVectors(t)
	if len(vs) < 100 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		name := fmt.Sprintf("%s/%s/%dx%d/%.20s", v.kernel, v.initrd, v.cpus, v.memory>>20, v.cmdline)
		b := v.boot(t)
		kernel := bytes.Clone(b.Kernel)
		got, evs, err := tdx.BootRTMRs(fw, b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(b.Kernel, kernel) {
			t.Fatalf("%s: the kernel was modified", name)
		}
		for i := range 3 {
			if got[i] != v.rtmr[i] {
				t.Errorf("%s: RTMR%d = %x, want %x", name, i, got[i], v.rtmr[i])
			}
		}
		r1, r2, err := tdx.KernelRTMRs(b)
		if err != nil || r1 != v.rtmr[1] || r2 != v.rtmr[2] {
			t.Errorf("%s: KernelRTMRs = %x, %x, %v", name, r1, r2, err)
		}
		if n := len(evs); n < 18 {
			t.Errorf("%s: %d events", name, n)
		}
	}
}

// TestBootConstantsAgainstRealLog checks the events whose contents do not
// depend on the boot against a real TD's event log (go-tdx-guest's CCEL
// from a TD on TDX hardware): the EFI actions, the separator, the UEFI
// variable encoding of the secure-boot variables, and OVMF's Boot0000.
func TestBootConstantsAgainstRealLog(t *testing.T) {
	raw, err := os.ReadFile("../testdata/tdx/ccel/ccel_data.dat")
	if err != nil {
		t.Fatal(err)
	}
	real, err := tdx.ParseEventLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[[48]byte]bool{}
	for _, e := range real {
		digests[e.Digest] = true
	}
	v := bootVectors(t)[0]
	_, evs, err := tdx.BootRTMRs(ovmftest.DebianOVMF(t), v.boot(t))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, e := range evs {
		if digests[e.Digest] {
			found[e.Name] = true
		}
	}
	for _, name := range []string{"separator", "Boot0000",
		"Calling EFI Application from Boot Option", "Exit Boot Services Invocation", "Exit Boot Services Returned with Success"} {
		if !found[name] {
			t.Errorf("%s: no event of the real log has our digest", name)
		}
	}
	// The real log's secure-boot variables (its own values) hash as the
	// UEFI_VARIABLE_DATA this package builds from their parts.
	n := 0
	for _, e := range real {
		if e.Type != tdx.EventVariableDriverCfg {
			continue
		}
		guid, name, data, ok := splitVariableData(e.Data)
		if !ok {
			t.Fatalf("variable event %x: bad data", e.Digest[:6])
		}
		if got := tdx.VariableDigest(guid, name, data); got != e.Digest {
			t.Errorf("%s: digest %x, the real log's %x", name, got[:8], e.Digest[:8])
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d secure-boot variable events in the real log, want 5", n)
	}
}

func splitVariableData(b []byte) (guid [16]byte, name string, data []byte, ok bool) {
	if len(b) < 32 {
		return
	}
	nlen := int(b[16]) | int(b[17])<<8
	dlen := int(b[24]) | int(b[25])<<8
	if len(b) != 32+2*nlen+dlen {
		return
	}
	u := make([]rune, nlen)
	for i := range u {
		u[i] = rune(b[32+2*i]) | rune(b[33+2*i])<<8
	}
	return [16]byte(b), string(u), b[32+2*nlen:], true
}

// TestBootRefusals checks what the model refuses, each with a clear
// error, and that hostile kernels and tables are bounded.
func TestBootRefusals(t *testing.T) {
	fw := ovmftest.DebianOVMF(t)
	v := bootVectors(t)[0]
	good := v.boot(t)
	uki := readBootFile(t, "u1.efi")
	cases := []struct {
		name string
		edit func(b *tdx.Boot)
		want string
	}{
		{"no command line", func(b *tdx.Boot) { b.Cmdline = "" }, "needs a command line"},
		{"non-ASCII command line", func(b *tdx.Boot) { b.Cmdline = "console=ttyS0 naïve" }, "only printable ASCII"},
		{"UKI with an initrd", func(b *tdx.Boot) { b.Kernel, b.Cmdline, b.Initrd = uki, "", []byte{1} }, "carries its own"},
		{"UKI with a command line", func(b *tdx.Boot) { b.Kernel = uki }, "carries its own"},
		{"empty initrd", func(b *tdx.Boot) { b.Initrd = []byte{} }, "empty initrd"},
		{"no ACPI tables", func(b *tdx.Boot) { b.ACPITables = nil }, "needs the VM's ACPI tables"},
		{"tiny memory", func(b *tdx.Boot) { b.Memory = 1 << 20 }, "guest memory"},
		{"initrd too large", func(b *tdx.Boot) { b.Memory = 64 << 20; b.Initrd = make([]byte, 64<<20-0x20000) }, "does not fit"},
		{"not a PE", func(b *tdx.Boot) { b.Kernel = make([]byte, 4096) }, "no MZ header"},
		{"truncated kernel", func(b *tdx.Boot) { b.Kernel = b.Kernel[:0x1100] }, "past the end of the file"},
		{"zero-length ACPI table", func(b *tdx.Boot) { b.ACPITables = []byte("RSDT\x00\x00\x00\x00") }, "ACPI table"},
	}
	for _, c := range cases {
		b := good
		b.Kernel = bytes.Clone(good.Kernel)
		c.edit(&b)
		_, _, err := tdx.BootRTMRs(fw, b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		} else if !errors.Is(err, tdx.ErrBoot) && !errors.Is(err, tdx.ErrFirmware) {
			t.Errorf("%s: %v wraps neither ErrBoot nor ErrFirmware", c.name, err)
		}
	}
}

// TestRealKernel checks a real signed kernel (Debian's
// linux-image-6.1.0-50-cloud-amd64, 14 MB, not committed) when one is given
// as MAGE_TDX_KERNEL, against the reference's RTMRs recorded in
// testdata/tdx/boot/real-kernel.tsv for its SHA-256.
func TestRealKernel(t *testing.T) {
	path := os.Getenv("MAGE_TDX_KERNEL")
	if path == "" {
		t.Skip("set MAGE_TDX_KERNEL to the kernel of testdata/tdx/boot/real-kernel.tsv (see its README) to run")
	}
	kernel, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(kernel)
	fw := ovmftest.DebianOVMF(t)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(readBootFile(t, "real-kernel.tsv")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if f[0] != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s has SHA-256 %x, not the recorded %s", path, sum, f[0])
		}
		v := bootVector{kernel: "k1.efi", initrd: f[1], cmdline: f[7]} // the kernel is replaced below
		v.cpus, _ = strconv.Atoi(f[2])
		v.memory, _ = strconv.ParseUint(f[3], 10, 64)
		b := v.boot(t)
		b.Kernel = kernel
		got, _, err := tdx.BootRTMRs(fw, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if hex.EncodeToString(got[i][:]) != f[4+i] {
				t.Errorf("%s %dx%d: RTMR%d = %x, want %s", f[1], v.cpus, v.memory, i, got[i], f[4+i])
			}
		}
		n++
	}
	t.Logf("%d real-kernel boots match", n)
}
