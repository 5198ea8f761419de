package main

// magectl demo: sign a mixed MAGE group (three SGX SDK enclaves from the
// sample enclaves, one Gramine enclave, as a Go service would run, one AMD
// SEV-SNP VM and one Intel TDX trust domain), load each enclave and the TD
// on a simulated SGX/TDX platform and the VM on a simulated SNP platform,
// each as its own process, have every pair attest each other over TLS
// (both directions; remote and local evidence between enclaves, SNP
// reports from the VM, TD quotes from the TD), and show five impostors
// being refused.

import (
	"bufio"
	"context"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/snp"
	"github.com/magesgx/mage/snp/snpreport"
)

//go:embed demodata
var demoData embed.FS

type demoInput struct{ name, enclave, config, key string }

var demoGroup = []demoInput{
	{"alice", "g1_m0.so", "cG1_group_a.config.xml", "g1_k0.pem"},
	{"bob", "g1_m1.so", "cG1_group_b.config.xml", "g1_k1.pem"},
	{"carol", "g1_m2.so", "cA_sample_default.config.xml", "g1_k2.pem"},
}

// demoGramine is the demo's Gramine member: the manifest of a Go service
// as gramine-sgx-sign expands it, run with a stand-in libpal.
func demoGramine() (*mage.GramineMember, error) {
	manifest, err := demoData.ReadFile("demodata/dave.manifest.sgx")
	if err != nil {
		return nil, err
	}
	kp, err := demoData.ReadFile("demodata/gramine_key.pem")
	if err != nil {
		return nil, err
	}
	key, err := sgx.LoadSigningKey(kp)
	if err != nil {
		return nil, err
	}
	return &mage.GramineMember{Name: "dave", Manifest: manifest, Key: key}, nil
}

func (d demoInput) member() (mage.Member, error) {
	elf, err := demoData.ReadFile("demodata/" + d.enclave)
	if err != nil {
		return mage.Member{}, err
	}
	raw, err := demoData.ReadFile("demodata/" + d.config)
	if err != nil {
		return mage.Member{}, err
	}
	cfg, err := sgxsdk.ParseConfig(raw)
	if err != nil {
		return mage.Member{}, err
	}
	kp, err := demoData.ReadFile("demodata/" + d.key)
	if err != nil {
		return mage.Member{}, err
	}
	key, err := sgx.LoadSigningKey(kp)
	if err != nil {
		return mage.Member{}, err
	}
	return mage.Member{Name: d.name, ELF: elf, Config: cfg, Key: key}, nil
}

// demoVM is the demo's SEV-SNP member: QEMU booting the AmdSev OVMF image
// (its last page, with the digest of its firmware pages that
// sev-snp-measure computes for the whole image) with a direct boot of a
// stand-in kernel, two EPYC-Milan vCPUs.
type demoVM struct {
	name    string
	fw      []byte
	kernel  []byte
	cmdline string
}

func newDemoVM() (*demoVM, error) {
	fw, err := demoData.ReadFile("demodata/ovmf_AmdSev_suffix.bin")
	if err != nil {
		return nil, err
	}
	return &demoVM{name: "erin", fw: fw, kernel: []byte("erin's kernel: a stand-in whose SHA-256 the launch measures"), cmdline: "console=ttyS0 quiet"}, nil
}

func (v *demoVM) options(cmdline string) snp.Options {
	fd, _ := hex.DecodeString("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74")
	return snp.Options{VCPUs: 2, VCPUSignature: snp.Signature(25, 1, 1), GuestFeatures: 1, FirmwareDigest: (*[48]byte)(fd),
		Boot: snp.NewDirectBoot(v.kernel, nil, cmdline)}
}

// member is the VM to bind into a group: its launch cut at the hashes page.
func (v *demoVM) member() (mage.AnyMember, error) {
	l, err := snp.Cut(v.fw, v.options(""))
	if err != nil {
		return mage.AnyMember{}, err
	}
	return mage.AnyMember{SNP: &mage.SNPMember{Name: v.name, Entry: mage.SNPEntry{Launch: *l, Cmdline: v.cmdline}}}, nil
}

// launch is what the host's launch of the VM with a command line measures
// (the simulated platform is told; a real one measures the pages itself).
func (v *demoVM) launch(cmdline string) ([48]byte, error) {
	return snp.LaunchDigest(v.fw, v.options(cmdline))
}

// demoTD is the demo's TDX member: Debian 12's OVMF (its MRTD, as
// magectl tdx measure gives it) booted as in go-tdx-guest's real CCEL
// event log (RTMR0 to RTMR2, tdx.ReplayRTMRs), its boot then extending
// RTMR3 with the table's event.
func demoTD() *mage.TDXMember {
	h := func(s string) (b [48]byte) { hex.Decode(b[:], []byte(s)); return b }
	return &mage.TDXMember{Name: "frank", Entry: mage.TDXEntry{
		MRTD: h("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47"),
		RTMR: [3][48]byte{
			h("3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6"),
			h("f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1"),
			h("4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1"),
		}}}
}

// demoInputs returns the demo's SDK members, ready to sign.
func demoInputs() ([]mage.Member, error) {
	var inputs []mage.Member
	for _, d := range demoGroup {
		m, err := d.member()
		if err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
		inputs = append(inputs, m)
	}
	return inputs, nil
}

// Results, also the --json output.
type demoResult struct {
	OK         bool            `json:"ok"`
	Platform   string          `json:"platform"`
	Members    []demoProcess   `json:"members"`
	Handshakes []demoHandshake `json:"handshakes"`
	Impostors  []demoImpostor  `json:"impostors"`
	Problems   []string        `json:"problems,omitempty"`
	Seconds    float64         `json:"seconds"`
}

type demoProcess struct {
	Index     int             `json:"index"`
	Name      string          `json:"name"`
	Kind      string          `json:"kind"`             // sdk, gramine, snp, tdx
	Launch    string          `json:"launch,omitempty"` // an SNP VM's launch digest
	MRTD      string          `json:"mrtd,omitempty"`   // a TD's MRTD and RTMR3
	RTMR3     string          `json:"rtmr3,omitempty"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	MRSIGNER  sgx.Measurement `json:"mrsigner"`
	PID       int             `json:"pid"`
	Addr      string          `json:"addr"`
}

type demoHandshake struct {
	Client         string `json:"client"`
	Server         string `json:"server"`
	Evidence       string `json:"evidence"`
	ClientVerified bool   `json:"client_verified_server"`
	ServerVerified bool   `json:"server_verified_client"`
	Reply          string `json:"reply,omitempty"`
	Error          string `json:"error,omitempty"`
}

type demoImpostor struct {
	Name      string          `json:"name"`
	What      string          `json:"what"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	Launch    string          `json:"launch,omitempty"`
	RTMR3     string          `json:"rtmr3,omitempty"`
	Target    string          `json:"target"`
	Refused   bool            `json:"refused"`
	Reason    string          `json:"reason"`
}

// child-process messages (JSON lines on the child's stdout).
type demoEvent struct {
	Event     string          `json:"event"` // ready, dial, accepted, refused, error
	Addr      string          `json:"addr,omitempty"`
	Index     int             `json:"index"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	MRSIGNER  sgx.Measurement `json:"mrsigner"`
	Launch    string          `json:"launch,omitempty"`
	MRTD      string          `json:"mrtd,omitempty"`
	RTMR3     string          `json:"rtmr3,omitempty"`
	PID       int             `json:"pid,omitempty"`
	OK        bool            `json:"ok,omitempty"`
	Peer      int             `json:"peer"`
	Epoch     uint32          `json:"epoch,omitempty"` // the group epoch the peer was checked at
	Kind      string          `json:"kind,omitempty"`
	Reply     string          `json:"reply,omitempty"`
	Error     string          `json:"error,omitempty"`
}

type demoCommand struct {
	Dial    string `json:"dial,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Msg     string `json:"msg,omitempty"`
	Lineage string `json:"lineage,omitempty"` // a new lineage proof file to send
}

type demoChild struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	dials   chan demoEvent // results of our dials
	served  chan demoEvent // accepted/refused as a server
	control chan demoEvent // ready, then the answers to lineage commands
	ready   demoEvent
}

func runDemo(e *env, args []string) error {
	fs := newFlagSet(e, "demo", "demo [--json] [--platform DIR] [--keep] [--update]")
	jsonOut := fs.Bool("json", false, "print the results as JSON")
	platformDir := fs.String("platform", "", "simulated platform `directory` (default: a temporary one)")
	keep := fs.Bool("keep", false, "keep the temporary directory with the signed members")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	update := fs.Bool("update", false, "show a rolling update instead: an updatable group, one member upgraded, one dropped")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "mage-demo-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(e.stderr, "keeping %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	if *platformDir == "" {
		*platformDir = filepath.Join(work, "platform")
	}
	if *update {
		return runUpdateDemo(ctx, e, work, *platformDir, *jsonOut, start)
	}
	say := func(format string, a ...any) {
		if !*jsonOut {
			fmt.Fprintf(e.stdout, format, a...)
		}
	}

	// 1. Sign the group, and the impostors.
	inputs, err := demoInputs()
	if err != nil {
		return err
	}
	date := time.Now().UTC()
	palRaw, err := demoData.ReadFile("demodata/libpal.so")
	if err != nil {
		return err
	}
	pal, err := gramine.ParseLibpal(palRaw)
	if err != nil {
		return err
	}
	palPath := filepath.Join(work, "libpal.so")
	if err := atomicfile.WriteFile(palPath, palRaw, 0o644); err != nil {
		return err
	}
	dave, err := demoGramine()
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	vm, err := newDemoVM()
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	erin, err := vm.member()
	if err != nil {
		return err
	}
	frank := demoTD()
	all := []mage.AnyMember{{SDK: &inputs[0]}, {SDK: &inputs[1]}, {SDK: &inputs[2]}, {Gramine: dave}, erin, {TDX: frank}}
	group, err := mage.SignAnyGroup(ctx, all, pal, mage.SignOptions{Date: date})
	if err != nil {
		return err
	}
	// The same VM and TD bound into another group: impostors to this one.
	otherVM, err := mage.SignAnyGroup(ctx, []mage.AnyMember{{SDK: &inputs[0]}, erin, {TDX: frank}}, nil, mage.SignOptions{Date: date})
	if err != nil {
		return err
	}
	files := map[string]string{}
	// A VM's boot inputs: the table it is handed and the command line it
	// boots with; and what the host's launch measures.
	type vmBoot struct {
		table, cmdline string
		launch         [48]byte
	}
	vms := map[string]vmBoot{}
	writeVM := func(name string, payload []byte, cmdline string) error {
		b := vmBoot{table: filepath.Join(work, name+".table"), cmdline: filepath.Join(work, name+".cmdline")}
		var err error
		if b.launch, err = vm.launch(cmdline); err != nil {
			return err
		}
		vms[name] = b
		if err := atomicfile.WriteFile(b.table, payload, 0o644); err != nil {
			return err
		}
		return atomicfile.WriteFile(b.cmdline, []byte(cmdline), 0o644)
	}
	if err := writeVM("mallory", otherVM.Payload, otherVM.Members[1].Cmdline); err != nil {
		return err
	}
	// A TD's boot input: the table it is handed (its boot extends RTMR3
	// with the table's event).
	tds := map[string]string{}
	writeTD := func(name string, payload []byte) error {
		tds[name] = filepath.Join(work, name+".table")
		return atomicfile.WriteFile(tds[name], payload, 0o644)
	}
	if err := writeTD("trudy", otherVM.Payload); err != nil {
		return err
	}
	write := func(name string, b []byte) error {
		p := filepath.Join(work, name+".signed.so")
		files[name] = p
		return atomicfile.WriteFile(p, b, 0o644)
	}
	for _, sm := range group.Members {
		if sm.Kind == mage.KindSNP {
			if err := writeVM(sm.Name, group.Payload, sm.Cmdline); err != nil {
				return err
			}
			continue
		}
		if sm.Kind == mage.KindTDX {
			if err := writeTD(sm.Name, group.Payload); err != nil {
				return err
			}
			continue
		}
		if sm.Kind == mage.KindGramine {
			p := filepath.Join(work, sm.Name+".manifest.sgx")
			files[sm.Name] = p
			if err := atomicfile.WriteFile(p, sm.File, 0o644); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(sigPathOf(p), sm.Sig, 0o644); err != nil {
				return err
			}
			continue
		}
		if err := write(sm.Name, sm.File); err != nil {
			return err
		}
	}
	solo, err := mage.SignGroup(ctx, []mage.Member{inputs[1]}, mage.SignOptions{Date: date})
	if err != nil {
		return err
	}
	other, err := mage.SignGroup(ctx, []mage.Member{inputs[0], inputs[2]}, mage.SignOptions{Date: date})
	if err != nil {
		return err
	}
	if err := write("outsider", solo.Members[0].File); err != nil {
		return err
	}
	if err := write("stranger", other.Members[0].File); err != nil {
		return err
	}
	say("MAGE demo: signed a mixed group of %d members, %d SGX SDK enclaves, a Gramine enclave, an SEV-SNP VM and a TDX trust domain (versioned table, sha256 %s)\n", len(group.Members), len(inputs), group.Manifest("", nil).TableSHA256[:16])

	// 2. Start every member, and the impostors, as processes on one
	// simulated platform.
	ps, err := newDemoProcs(ctx, e, *platformDir, palPath)
	if err != nil {
		return err
	}
	defer ps.close()
	startChild := func(name, file string, debug bool) (*demoChild, error) {
		if b, ok := vms[name]; ok {
			return ps.startVM(name, b.table, b.cmdline, b.launch)
		}
		if table, ok := tds[name]; ok {
			return ps.startTD(name, table, &frank.Entry)
		}
		return ps.start(name, file, "", debug)
	}
	res := &demoResult{OK: true, Platform: *platformDir}
	problem := func(format string, a ...any) {
		res.OK = false
		res.Problems = append(res.Problems, fmt.Sprintf(format, a...))
	}
	var members []*demoChild
	for _, sm := range group.Members {
		c, err := startChild(sm.Name, files[sm.Name], false)
		if err != nil {
			return err
		}
		members = append(members, c)
		res.Members = append(res.Members, demoProcess{Index: c.ready.Index, Name: sm.Name, Kind: sm.Kind.String(), Launch: c.ready.Launch, MRTD: c.ready.MRTD, RTMR3: c.ready.RTMR3,
			MRENCLAVE: c.ready.MRENCLAVE, MRSIGNER: c.ready.MRSIGNER, PID: c.ready.PID, Addr: c.ready.Addr})
	}
	say("\nmembers (each a separate process on simulated platforms in %s):\n", *platformDir)
	for _, m := range res.Members {
		switch m.Kind {
		case "snp":
			say("  %d %-6s %-7s launch    %s...  pid %-6d %s\n", m.Index, m.Name, "SEV-SNP", m.Launch[:64], m.PID, m.Addr)
		case "tdx":
			say("  %d %-6s %-7s RTMR3     %s...  pid %-6d %s\n", m.Index, m.Name, "TDX", m.RTMR3[:64], m.PID, m.Addr)
		default:
			kind := map[string]string{"sdk": "SDK", "gramine": "Gramine"}[m.Kind]
			say("  %d %-6s %-7s MRENCLAVE %s  pid %-6d %s\n", m.Index, m.Name, kind, m.MRENCLAVE, m.PID, m.Addr)
		}
	}

	// 3. Every ordered pair, with each kind of evidence.
	dial := ps.dial
	isVM := func(c *demoChild) bool {
		_, snp := vms[c.name]
		_, td := tds[c.name]
		return snp || td
	}
	for _, kind := range []string{"remote", "local"} {
		for i, c := range members {
			for j, s := range members {
				if i == j || (kind == "local" && (isVM(c) || isVM(s))) {
					// Local reports are between enclaves of one platform.
					continue
				}
				d, sv, err := dial(c, s, kind)
				if err != nil {
					return err
				}
				h := demoHandshake{Client: c.name, Server: s.name, Evidence: kind,
					ClientVerified: d.OK && d.Peer == j, ServerVerified: sv.Event == "accepted" && sv.Peer == i, Reply: d.Reply, Error: d.Error + sv.Error}
				if !h.ClientVerified || !h.ServerVerified || d.Reply != s.name+" got: hello from "+c.name {
					problem("%s -> %s (%s): expected mutual acceptance: %s", c.name, s.name, kind, h.Error)
				}
				res.Handshakes = append(res.Handshakes, h)
			}
		}
	}
	say("\nwho verified whom (row: client, column: server; R = remote: a quote from an enclave,\nan SNP report from the VM, a TD quote from the TD; L = local report; each cell means\nboth sides verified each other and exchanged a message):\n")
	say("  %-8s", "")
	for _, s := range members {
		say("%-8s", s.name)
	}
	say("\n")
	for _, c := range members {
		say("  %-8s", c.name)
		for _, s := range members {
			cell := "-"
			if c != s {
				cell = ""
				for _, h := range res.Handshakes {
					if h.Client == c.name && h.Server == s.name && h.ClientVerified && h.ServerVerified {
						cell += strings.ToUpper(h.Evidence[:1])
					}
				}
				if cell == "" {
					cell = "FAIL"
				}
			}
			say("%-8s", cell)
		}
		say("\n")
	}

	// 4. Impostors try to join; the member must refuse them.
	imps := []struct {
		name, what, file string
		debug            bool
	}{
		{"outsider", "bob's enclave signed outside the group", files["outsider"], false},
		{"debugger", "carol's signed file launched with DEBUG", files["carol"], true},
		{"stranger", "alice's enclave from another group", files["stranger"], false},
		{"mallory", "erin's VM booted with another group's table", "", false},
		{"trudy", "frank's TD booted with another group's table", "", false},
	}
	say("\nimpostors (each dials alice with remote evidence):\n")
	for _, imp := range imps {
		c, err := startChild(imp.name, imp.file, imp.debug)
		if err != nil {
			return err
		}
		d, sv, err := dial(c, members[0], "remote")
		if err != nil {
			return err
		}
		ri := demoImpostor{Name: imp.name, What: imp.what, MRENCLAVE: c.ready.MRENCLAVE, Launch: c.ready.Launch, RTMR3: c.ready.RTMR3, Target: "alice",
			Refused: !d.OK && sv.Event == "refused", Reason: sv.Error}
		if !ri.Refused {
			problem("%s (%s) was not refused by alice", imp.name, imp.what)
		}
		res.Impostors = append(res.Impostors, ri)
		say("  %-9s %-44s refused: %v\n            %s\n", imp.name, imp.what, ri.Refused, ri.Reason)
	}
	return finishDemo(e, res, *jsonOut, start)
}

// finishDemo reports a demo's results: JSON, or a summary line, and its
// problems (exit 1).
func finishDemo(e *env, res *demoResult, jsonOut bool, start time.Time) error {
	res.Seconds = time.Since(start).Seconds()
	if jsonOut {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(e.stdout, "\nall %d expected mutual attestations and %d refusals happened in %.1fs\n", len(res.Handshakes), len(res.Impostors), res.Seconds)
	}
	if !res.OK {
		for _, p := range res.Problems {
			fmt.Fprintln(e.stderr, "problem:", p)
		}
		return failed(errors.New("the demo did not go as expected"))
	}
	return nil
}

// demoProcs runs demo members as child processes on one simulated
// platform, and talks to them.
type demoProcs struct {
	ctx      context.Context
	platform string // the simulated SGX platform's directory
	snp      string // the simulated SNP platform's directory
	palPath  string
	self     string
	stderr   io.Writer
	children []*demoChild
}

func newDemoProcs(ctx context.Context, e *env, platformDir, palPath string) (*demoProcs, error) {
	if _, err := sim.Open(platformDir); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// Children's stderr goes to ours; serialise their writes when ours is
	// not a file the children can share directly.
	childErr := e.stderr
	if _, isFile := e.stderr.(*os.File); !isFile {
		childErr = &syncWriter{w: e.stderr}
	}
	snpDir := filepath.Join(platformDir, "snp")
	if _, err := sim.OpenSNPPlatform(snpDir); err != nil {
		return nil, err
	}
	return &demoProcs{ctx: ctx, platform: platformDir, snp: snpDir, palPath: palPath, self: self, stderr: childErr}, nil
}

// close ends every child: their stdin closes, and a child still running
// after three seconds is killed.
func (ps *demoProcs) close() {
	for _, c := range ps.children {
		c.stdin.Close()
	}
	for _, c := range ps.children {
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
}

// start runs a member (with its proof file, if any) and waits until it
// is ready.
func (ps *demoProcs) start(name, file, proof string, debug bool) (*demoChild, error) {
	args := []string{"-file", file}
	if proof != "" {
		args = append(args, "-proof", proof)
	}
	if debug {
		args = append(args, "-debug")
	}
	return ps.run(name, args)
}

// startVM runs a VM member on the simulated SNP platform, launched by the
// host with the given launch digest, handed a table and a command line.
func (ps *demoProcs) startVM(name, table, cmdline string, launch [48]byte) (*demoChild, error) {
	return ps.run(name, []string{"-table", table, "-cmdline", cmdline, "-launch", hex.EncodeToString(launch[:])})
}

// startTD runs a TDX member on the simulated platform: a TD of the entry's
// measurements whose boot extends RTMR3 with the event of the table it is
// handed.
func (ps *demoProcs) startTD(name, table string, e *mage.TDXEntry) (*demoChild, error) {
	rtmr := hex.EncodeToString(e.RTMR[0][:]) + "," + hex.EncodeToString(e.RTMR[1][:]) + "," + hex.EncodeToString(e.RTMR[2][:]) + "," + hex.EncodeToString(e.RTMR3[:])
	return ps.run(name, []string{"-td-table", table, "-mrtd", hex.EncodeToString(e.MRTD[:]), "-rtmr", rtmr})
}

func (ps *demoProcs) run(name string, extra []string) (*demoChild, error) {
	ctx := ps.ctx
	args := []string{"_demo-member", "-platform", ps.platform, "-snp-platform", ps.snp, "-name", name}
	if ps.palPath != "" {
		args = append(args, "-libpal", ps.palPath)
	}
	cmd := exec.CommandContext(ctx, ps.self, append(args, extra...)...)
	cmd.Stderr = ps.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &demoChild{name: name, cmd: cmd, stdin: in, dials: make(chan demoEvent, 16), served: make(chan demoEvent, 16)}
	ps.children = append(ps.children, c)
	readyc := make(chan demoEvent, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev demoEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			switch ev.Event {
			case "ready", "error", "lineage":
				readyc <- ev
			case "dial":
				c.dials <- ev
			default:
				c.served <- ev
			}
		}
		close(c.dials)
		close(c.served)
	}()
	c.control = readyc
	select {
	case ev := <-readyc:
		if ev.Event == "error" {
			return nil, fmt.Errorf("%s: %s", name, ev.Error)
		}
		c.ready = ev
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s did not start: %w", name, ctx.Err())
	}
}

// dial has client attest to server with the given kind of evidence and
// returns what each side reported.
func (ps *demoProcs) dial(client, server *demoChild, kind string) (demoEvent, demoEvent, error) {
	ctx := ps.ctx
	cmd, _ := json.Marshal(demoCommand{Dial: server.ready.Addr, Kind: kind, Msg: "hello from " + client.name})
	if _, err := client.stdin.Write(append(cmd, '\n')); err != nil {
		return demoEvent{}, demoEvent{}, err
	}
	var d, s demoEvent
	select {
	case d = <-client.dials:
	case <-ctx.Done():
		return d, s, ctx.Err()
	}
	select {
	case s = <-server.served:
	case <-ctx.Done():
		return d, s, ctx.Err()
	}
	return d, s, nil
}

// setLineage hands a running member a new lineage proof.
func (ps *demoProcs) setLineage(c *demoChild, proof string) error {
	cmd, _ := json.Marshal(demoCommand{Lineage: proof})
	if _, err := c.stdin.Write(append(cmd, '\n')); err != nil {
		return err
	}
	select {
	case ev := <-c.control:
		if ev.Error != "" {
			return fmt.Errorf("%s: %s", c.name, ev.Error)
		}
		return nil
	case <-ps.ctx.Done():
		return ps.ctx.Err()
	}
}

// runDemoMember is the hidden command each demo process runs: one enclave
// on the simulated platform, serving attested connections and dialing as
// told on stdin.
func runDemoMember(e *env, args []string) error {
	fs := newFlagSet(e, "_demo-member", "_demo-member -platform DIR -snp-platform DIR -name NAME (-file SIGNED [-debug] | -table FILE -cmdline FILE -launch HEX)")
	platformDir := fs.String("platform", "", "platform directory")
	snpDir := fs.String("snp-platform", "", "the simulated SEV-SNP platform's directory")
	file := fs.String("file", "", "signed member")
	tableFile := fs.String("table", "", "a VM member: the table it is handed")
	cmdlineFile := fs.String("cmdline", "", "a VM member: the kernel command line it boots with")
	launchHex := fs.String("launch", "", "a VM member: the launch digest the host's launch measured")
	tdTable := fs.String("td-table", "", "a TD member: the table it is handed (its boot extends RTMR3 with its event)")
	mrtdHex := fs.String("mrtd", "", "a TD member: its MRTD")
	rtmrHex := fs.String("rtmr", "", "a TD member: RTMR0 to RTMR3 at boot, comma-separated")
	name := fs.String("name", "", "member name")
	debug := fs.Bool("debug", false, "launch with DEBUG")
	libpal := fs.String("libpal", "", "the libpal.so of the group's Gramine members")
	proofFile := fs.String("proof", "", "the member's membership or lineage proof (Merkle groups)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var mu sync.Mutex
	emit := func(ev demoEvent) {
		b, _ := json.Marshal(ev)
		mu.Lock()
		defer mu.Unlock()
		e.stdout.Write(append(b, '\n'))
	}
	fail := func(err error) error {
		emit(demoEvent{Event: "error", Error: err.Error()})
		return err
	}
	p, err := sim.Open(*platformDir)
	if err != nil {
		return fail(err)
	}
	sp, err := sim.OpenSNPPlatform(*snpDir)
	if err != nil {
		return fail(err)
	}
	snpVerifier := &snpreport.Verifier{InsecureSimulationRoots: []snpreport.Roots{{ProductLine: sp.ProductLine, ARK: sp.ARK, ASK: sp.ASK}}}
	var pal *gramine.Libpal
	var palRaw []byte
	if *libpal != "" {
		if palRaw, err = os.ReadFile(*libpal); err != nil {
			return fail(err)
		}
		if pal, err = gramine.ParseLibpal(palRaw); err != nil {
			return fail(err)
		}
	}
	var vmBackend attest.SNPBackend
	if *tableFile != "" {
		payload, err := os.ReadFile(*tableFile)
		if err != nil {
			return fail(err)
		}
		cmdline, err := os.ReadFile(*cmdlineFile)
		if err != nil {
			return fail(err)
		}
		ld, err := hex.DecodeString(*launchHex)
		if err != nil || len(ld) != 48 {
			return fail(fmt.Errorf("-launch: want 96 hex digits"))
		}
		guest := sp.Launch([48]byte(ld), sim.SNPPolicy, [32]byte{})
		vmBackend = &attest.SimSNPBackend{Guest: guest, Payload: payload, Cmdline: string(cmdline)}
	}
	var tdBackend attest.TDXBackend
	if *tdTable != "" {
		payload, err := os.ReadFile(*tdTable)
		if err != nil {
			return fail(err)
		}
		var mrtd [48]byte
		var rtmr [4][48]byte
		regs := strings.Split(*rtmrHex, ",")
		bad := len(regs) != 4
		for i, h := range append([]string{*mrtdHex}, regs...) {
			b, err := hex.DecodeString(h)
			if bad = bad || err != nil || len(b) != 48; bad {
				break
			}
			if i == 0 {
				mrtd = [48]byte(b)
			} else {
				rtmr[i-1] = [48]byte(b)
			}
		}
		if bad {
			return fail(fmt.Errorf("-mrtd and -rtmr: want 96 hex digits each, four RTMRs"))
		}
		td := p.LaunchTD(mrtd, rtmr, 0)
		// What the TD's measured boot does first: bind the table.
		if err := td.ExtendRTMR(3, mage.TableEvent(mage.TableSHA256(payload))); err != nil {
			return fail(err)
		}
		tdBackend = &attest.SimTDXBackend{Guest: td, Payload: payload}
	}
	var raw []byte
	if vmBackend == nil && tdBackend == nil {
		if raw, err = os.ReadFile(*file); err != nil {
			return fail(err)
		}
	}
	var enc *sim.Enclave
	switch {
	case vmBackend != nil, tdBackend != nil:
	case isELF(raw):
		enc, err = p.Load(e.ctx, raw, &sim.LoadOptions{Debug: *debug})
	default:
		sig, serr := os.ReadFile(sigPathOf(*file))
		if serr != nil {
			return fail(serr)
		}
		enc, err = p.LoadGramine(e.ctx, raw, palRaw, sig, &sim.LoadOptions{Debug: *debug})
	}
	if err != nil {
		return fail(err)
	}
	var backend attest.Backend
	if enc != nil {
		backend = attest.NewSimBackend(enc)
	}
	var proof *memberProof
	if *proofFile != "" {
		if proof, err = readProofFile(*proofFile); err != nil {
			return fail(err)
		}
	}
	mk := func(kind attest.Kind) (*attest.Member, error) {
		cfg := attest.Config{Backend: backend, Evidence: kind, InsecureSimulationRoot: p.RootCertificate(), Libpal: pal, HandshakeTimeout: 10 * time.Second,
			SNPVerifier: snpVerifier}
		if vmBackend != nil {
			cfg.Backend, cfg.SNP, cfg.Evidence = nil, vmBackend, 0
		}
		if tdBackend != nil {
			cfg.Backend, cfg.TDX, cfg.Evidence = nil, tdBackend, 0
		}
		if proof != nil {
			cfg.Proof, cfg.Lineage = proof.plain, proof.lineage
		}
		return attest.NewMember(cfg)
	}
	server, err := mk(0)
	if err != nil {
		return fail(err)
	}
	clients := map[string]*attest.Member{}
	for k, kind := range map[string]attest.Kind{"remote": attest.Remote, "local": attest.Local} {
		if (vmBackend != nil || tdBackend != nil) && kind == attest.Local {
			continue // a VM proves itself with its own evidence only
		}
		if clients[k], err = mk(kind); err != nil {
			return fail(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	l := server.NewListener(ln)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				ac := c.(*attest.Conn)
				defer ac.Close()
				if err := ac.Handshake(e.ctx); err != nil {
					emit(demoEvent{Event: "refused", Error: err.Error()})
					return
				}
				peer := ac.Peer()
				emit(demoEvent{Event: "accepted", Peer: peer.Index, Kind: peer.Evidence.String(), Epoch: peer.Epoch})
				line, err := bufio.NewReader(ac).ReadString('\n')
				if err == nil {
					fmt.Fprintf(ac, "%s got: %s\n", *name, strings.TrimSpace(line))
				}
			}()
		}
	}()
	id := server.Identity()
	ready := demoEvent{Event: "ready", Addr: ln.Addr().String(), Index: server.Index(), MRENCLAVE: id.MRENCLAVE, MRSIGNER: id.MRSIGNER, PID: os.Getpid()}
	if vmBackend != nil {
		l := server.Launch()
		ready.Launch = hex.EncodeToString(l[:])
	}
	if tdBackend != nil {
		td := server.TD()
		ready.MRTD, ready.RTMR3 = hex.EncodeToString(td.MRTD[:]), hex.EncodeToString(td.RTMR[3][:])
	}
	emit(ready)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var cmd demoCommand
		if json.Unmarshal(sc.Bytes(), &cmd) != nil {
			continue
		}
		if cmd.Lineage != "" {
			// The host hands the running member a newer lineage proof.
			ev := demoEvent{Event: "lineage", OK: true}
			lp, err := readProofFile(cmd.Lineage)
			if err == nil && lp.lineage == nil {
				err = fmt.Errorf("%s is not a lineage proof", cmd.Lineage)
			}
			for _, m := range []*attest.Member{server, clients["remote"], clients["local"]} {
				if m == nil {
					continue
				}
				if err == nil {
					err = m.SetLineage(lp.lineage)
				}
			}
			if err != nil {
				ev.OK, ev.Error = false, err.Error()
			}
			emit(ev)
			continue
		}
		if clients[cmd.Kind] == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
		c, err := clients[cmd.Kind].Dial(ctx, "tcp", cmd.Dial)
		if err != nil {
			cancel()
			emit(demoEvent{Event: "dial", Error: err.Error()})
			continue
		}
		fmt.Fprintf(c, "%s\n", cmd.Msg)
		reply, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		cancel()
		ev := demoEvent{Event: "dial", OK: err == nil, Peer: c.Peer().Index, Epoch: c.Peer().Epoch, Kind: cmd.Kind, Reply: strings.TrimSpace(reply)}
		if err != nil {
			ev.Error = err.Error()
		}
		emit(ev)
	}
	return nil
}

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
