package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// The benchmarks here run the built magectl as a user would (a process per
// command) and report each issue-13 goal as a ratio measured in the same
// run. They build magectl and a hello-world Go program first.

func buildBinaries(b *testing.B) (magectl, hello string) {
	b.Helper()
	dir := b.TempDir()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	magectl, hello = filepath.Join(dir, "magectl"), filepath.Join(dir, "hello")
	// Built as released: static (CGO_ENABLED=0; magectl has no C code,
	// and a dynamically linked binary spends about a millisecond in the
	// dynamic loader before Go starts).
	build := exec.Command(goTool, "build", "-o", magectl, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building magectl: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "hello.go")
	os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	if out, err := exec.Command(goTool, "build", "-o", hello, src).CombinedOutput(); err != nil {
		b.Fatalf("building hello: %v\n%s", err, out)
	}
	return magectl, hello
}

// usage is what one process cost.
type usage struct{ wall, cpu time.Duration }

func runProc(b *testing.B, dir string, name string, args ...string) usage {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return usage{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}

// BenchmarkStartup: magectl --help against a hello-world Go program, both
// exec'd (goal: at most 2x).
func BenchmarkStartup(b *testing.B) {
	magectl, hello := buildBinaries(b)
	var tm, th time.Duration
	for b.Loop() {
		th += runProc(b, "", hello).wall
		tm += runProc(b, "", magectl, "--help").wall
	}
	b.ReportMetric(float64(th.Microseconds())/float64(b.N), "hello-µs")
	b.ReportMetric(float64(tm.Microseconds())/float64(b.N), "magectl-help-µs")
	b.ReportMetric(float64(tm)/float64(th), "help/hello")
}

// BenchmarkSignCommand: one magectl sign against its floor, a hello-world
// start plus one RSA-3072 signature plus SHA-256 over the enclave's
// measured bytes (goal: at most 1.3x).
func BenchmarkSignCommand(b *testing.B) {
	magectl, hello := buildBinaries(b)
	enclave, config, keyFile := v("enclaves/g2_m0.so"), v("configs/cG2_group.config.xml"), v("keys/g2_k.pem")
	raw, _ := os.ReadFile(enclave)
	cfgRaw, _ := os.ReadFile(config)
	cfg, err := sgxsdk.ParseConfig(cfgRaw)
	if err != nil {
		b.Fatal(err)
	}
	im, err := sgxsdk.Prepare(raw, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := im.MeasurePrefix()
	if err != nil {
		b.Fatal(err)
	}
	_, size, _ := im.MageSection()
	measured := make([]byte, st.Size+size/4096*5184)
	kb, _ := os.ReadFile(keyFile)
	key, err := sgx.LoadSigningKey(kb)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "s.so")
	var ts, tf time.Duration
	for b.Loop() {
		ts += runProc(b, "", magectl, "sign", "-key", keyFile, "-enclave", enclave, "-config", config, "-out", out, "-date", "20261123").wall
		t0 := time.Now()
		runProc(b, "", hello)
		d := sha256.Sum256(measured)
		rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
		tf += time.Since(t0)
	}
	b.ReportMetric(float64(ts.Microseconds())/float64(b.N), "sign-µs")
	b.ReportMetric(float64(tf.Microseconds())/float64(b.N), "floor-µs")
	b.ReportMetric(float64(ts)/float64(tf), "sign/floor")
}

// BenchmarkGroupSign85: magectl group sign of 85 members, writing durably:
// wall time against CPU time over the cores (goal: at most 1.3x), and peak
// RSS against a single sign's (goal: at most 1.5x).
func BenchmarkGroupSign85(b *testing.B) {
	magectl, _ := buildBinaries(b)
	dir := b.TempDir()
	var members []string
	for i := range 85 {
		cfg := filepath.Join(dir, fmt.Sprintf("c%d.xml", i))
		os.WriteFile(cfg, fmt.Appendf(nil, "<EnclaveConfiguration><ProdID>200</ProdID><ISVSVN>5</ISVSVN><HeapMaxSize>%#x</HeapMaxSize><TCSNum>2</TCSNum></EnclaveConfiguration>", 0x100000+(i/10)*0x1000), 0o644)
		members = append(members, fmt.Sprintf(`{"name": "m%d", "enclave": %q, "config": %q, "key": %q, "output": "out/m%d.so"}`,
			i, v(fmt.Sprintf("enclaves/g2_m%d.so", i%10)), cfg, v("keys/g2_k.pem"), i))
	}
	os.WriteFile(filepath.Join(dir, "g.json"), []byte(`{"name": "g85", "date": "20261123", "members": [`+strings.Join(members, ",")+`]}`), 0o644)
	var wall, cpu time.Duration
	var rss, rss1 int64
	for b.Loop() {
		u := runProc(b, dir, magectl, "group", "sign", "-q", "-force", "g.json")
		wall, cpu = wall+u.wall, cpu+u.cpu
	}
	// Peak RSS through /usr/bin/time: a child of this (large) test process
	// inherits its peak in ru_maxrss, a grandchild of time does not.
	b.StopTimer()
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		rss = peakRSS(b, dir, magectl, "group", "sign", "-q", "-force", "g.json")
		rss1 = peakRSS(b, dir, magectl, "sign", "-key", v("keys/g2_k.pem"), "-enclave", v("enclaves/g2_m0.so"), "-config", filepath.Join(dir, "c0.xml"), "-out", "one.so", "-date", "20261123")
	}
	cores := float64(runtime.NumCPU())
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms")
	b.ReportMetric(float64(wall)/(float64(cpu)/cores), "wall/(cpu/cores)")
	if rss1 > 0 {
		b.ReportMetric(float64(rss)/1024, "peak-MB")
		b.ReportMetric(float64(rss)/float64(rss1), "peak/single-sign-peak")
	}
}

// peakRSS runs a command under /usr/bin/time and returns its peak RSS in
// KiB.
func peakRSS(b *testing.B, dir string, args ...string) int64 {
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M"}, args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, stderr.String())
	}
	lines := strings.Fields(stderr.String())
	var kb int64
	fmt.Sscan(lines[len(lines)-1], &kb)
	return kb
}
