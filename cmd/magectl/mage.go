package main

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// ---- magectl group ----

func runGroup(e *env, args []string) error {
	return dispatch(e, args, "group", `Usage: magectl group <sign|verify> [flags]

  sign GROUP.json     sign every member of a group so each carries the
                      .sgx_mage table; writes the members and group.json
  verify MEMBER...    check that every member's table derives every
                      member's real MRENCLAVE

Run "magectl group <command> --help" for flags.
`, map[string]func(*env, []string) error{"sign": runGroupSign, "verify": runGroupVerify})
}

// parseInterspersed parses flags that may come before or after positional
// arguments, and returns the positional ones.
func parseInterspersed(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func runGroupSign(e *env, args []string) error {
	fs := newFlagSet(e.stderr, "group sign", "group sign [flags] GROUP.json")
	date := fs.String("date", "", "SIGSTRUCT date `YYYYMMDD` (default: $SOURCE_DATE_EPOCH, else today UTC)")
	manifest := fs.String("manifest", "", "where to write the group manifest (default: group.json beside the group file)")
	force := fs.Bool("force", false, "overwrite existing outputs")
	workers := fs.Int("j", 0, "members signed in parallel (default: number of CPUs)")
	jsonOut := fs.Bool("json", false, "print the manifest as JSON on stdout")
	quiet := fs.Bool("q", false, "no progress on stderr")
	arg, err := parseOneArg(fs, args, "group file")
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	gf, err := mage.ParseGroupFile(raw, filepath.Dir(arg))
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	d := *date
	if d == "" {
		d = gf.Date
	}
	sigDate, err := signingDate(e, d)
	if err != nil {
		return err
	}
	mpath := *manifest
	if mpath == "" {
		mpath = filepath.Join(filepath.Dir(arg), "group.json")
	}
	var inputs []string
	inputs = append(inputs, arg)
	for _, m := range gf.Members {
		inputs = append(inputs, m.Enclave, m.Config, m.Key)
	}
	if err := checkOutputs(inputs, append(outputsOf(gf), mpath)); err != nil {
		return err
	}
	if !*force {
		for _, p := range append(outputsOf(gf), mpath) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return describeExists(p)
			}
		}
	}
	members := make([]mage.Member, len(gf.Members))
	for i, m := range gf.Members {
		mm, err := loadMember(m)
		if err != nil {
			return fmt.Errorf("member %d (%s): %w", i, m.Name, err)
		}
		members[i] = mm
	}
	opts := mage.SignOptions{Date: sigDate, Workers: *workers}
	start := time.Now()
	if !*quiet && len(members) >= 10 {
		opts.Progress = func(stage string, done, total int) {
			fmt.Fprintf(e.stderr, "\r%s %d/%d", stage, done, total)
			if done == total {
				fmt.Fprintln(e.stderr)
			}
		}
	}
	g, err := mage.SignGroup(e.ctx, members, opts)
	if err != nil {
		return err
	}
	files := outputsOf(gf)
	for i, sm := range g.Members {
		if err := e.writeOutput(files[i], sm.File, 0o755, *force); err != nil {
			return err
		}
	}
	man := g.Manifest(gf.Name, files)
	mj, _ := json.MarshalIndent(man, "", "  ")
	mj = append(mj, '\n')
	if err := e.writeOutput(mpath, mj, 0o644, *force); err != nil {
		return err
	}
	if *jsonOut {
		_, err := e.stdout.Write(mj)
		return err
	}
	if !*quiet {
		fmt.Fprintf(e.stderr, "signed %d members in %v; manifest %s\n", len(g.Members), time.Since(start).Round(time.Millisecond), mpath)
	}
	printMembers(e.stdout, man)
	return nil
}

func outputsOf(gf *mage.GroupFile) []string {
	out := make([]string, len(gf.Members))
	for i, m := range gf.Members {
		out[i] = m.Output
	}
	return out
}

func loadMember(m mage.MemberFile) (mage.Member, error) {
	elfBytes, err := os.ReadFile(m.Enclave)
	if err != nil {
		return mage.Member{}, err
	}
	var cfg *sgxsdk.Config
	if m.Config != "" {
		raw, err := os.ReadFile(m.Config)
		if err != nil {
			return mage.Member{}, err
		}
		if cfg, err = sgxsdk.ParseConfig(raw); err != nil {
			return mage.Member{}, fmt.Errorf("%s: %w", m.Config, err)
		}
	}
	key, err := readKey(m.Key)
	if err != nil {
		return mage.Member{}, err
	}
	return mage.Member{Name: m.Name, ELF: elfBytes, Config: cfg, Key: key}, nil
}

func readKey(path string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := sgx.LoadSigningKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func printMembers(w io.Writer, m *mage.Manifest) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tNAME\tMRENCLAVE\tMRSIGNER\tPRODID\tSVN")
	for _, mm := range m.Members {
		id := mm.Identity
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%d\t%d\n", mm.Index, mm.Name, id.MRENCLAVE, id.MRSIGNER.String()[:16], id.ISVProdID, id.ISVSVN)
	}
	tw.Flush()
	fmt.Fprintf(w, "table sha256 %s (%d bytes)\n", m.TableSHA256, m.SectionSize)
}

// signingDate picks the SIGSTRUCT date: the flag, else SOURCE_DATE_EPOCH
// (reproducible builds), else today in UTC.
func signingDate(e *env, flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse("20060102", flagValue)
		if err != nil || len(flagValue) != 8 {
			return time.Time{}, usagef("-date %q: want YYYYMMDD", flagValue)
		}
		return t, nil
	}
	if s := e.getenv("SOURCE_DATE_EPOCH"); s != "" {
		var secs int64
		if _, err := fmt.Sscanf(s, "%d", &secs); err != nil || fmt.Sprint(secs) != strings.TrimSpace(s) {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a whole number of seconds", s)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

func mapFlagErr(err error) error {
	if errors.Is(err, errHelpShown) {
		return err
	}
	if errors.Is(err, flag.ErrHelp) {
		return errHelpShown
	}
	var u usageError
	if errors.As(err, &u) {
		return err
	}
	return usagef("%v", err)
}

// ---- magectl derive ----

type deriveResult struct {
	File     string            `json:"file"`
	Self     int               `json:"self"`
	Identity sgx.Identity      `json:"identity"` // the file's own, verified (replayed and signed)
	Trusted  bool              `json:"trusted,omitempty"`
	Members  []sgx.Measurement `json:"members"`
}

func runDerive(e *env, args []string) error {
	fs := newFlagSet(e.stderr, "derive", "derive [--json] [--trust MRENCLAVE] SIGNED_MEMBER")
	jsonOut := fs.Bool("json", false, "print JSON")
	trust := fs.String("trust", "", "a trusted `MRENCLAVE` (hex) of this member: check the table belongs to it before trusting the group")
	arg, err := parseOneArg(fs, args, "signed member")
	if err != nil {
		return err
	}
	var trusted *sgx.Measurement
	if *trust != "" {
		m, err := sgx.ParseMeasurement(*trust)
		if err != nil {
			return usagef("--trust: %v", err)
		}
		trusted = &m
	}
	res, err := deriveFile(e.ctx, arg, trusted)
	if err != nil {
		return err
	}
	if *jsonOut {
		return writeJSON(e.stdout, res)
	}
	for i, m := range res.Members {
		mark := ""
		if i == res.Self {
			mark = "  (self)"
		}
		fmt.Fprintf(e.stdout, "%d %s%s\n", i, m, mark)
	}
	if res.Trusted {
		fmt.Fprintf(e.stderr, "table authenticated by the trusted MRENCLAVE of member %d\n", res.Self)
	}
	return nil
}

// deriveFile derives every member from a signed member's table. The
// member's own MRENCLAVE is the replayed measurement of the file (never the
// unverified SIGSTRUCT field), and its SIGSTRUCT must be validly signed
// over it. With a trusted value, the file must measure exactly that value
// and the table must derive it.
func deriveFile(ctx context.Context, path string, trusted *sgx.Measurement) (*deriveResult, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	signed, section, err := signedMageSection(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	self, err := checkSigned(ctx, signed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res := &deriveResult{File: path, Self: -1, Identity: signed.Sigstruct().SignedIdentity()}
	if trusted != nil && self != *trusted {
		return nil, failed(fmt.Errorf("%s measures %s, not the trusted MRENCLAVE %s", path, self, *trusted))
	}
	g, err := mage.Trust(ctx, self, section)
	if errors.Is(err, mage.ErrUntrustedTable) {
		return nil, failed(fmt.Errorf("%s: its own MRENCLAVE %s is not in its table: the file is not a member of the group it carries", path, self))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.Self, res.Members, res.Trusted = g.Self, g.Measurements, trusted != nil
	return res, nil
}

// checkSigned replays a signed file's measurement and checks its SIGSTRUCT:
// the signature (a failed check, exit 1) and that it signs the replayed
// MRENCLAVE. It returns the replayed MRENCLAVE.
func checkSigned(ctx context.Context, s *sgxsdk.Signed) (sgx.Measurement, error) {
	mr, err := s.Measure(ctx)
	if err != nil {
		return sgx.Measurement{}, err
	}
	css := s.Sigstruct()
	if err := css.Verify(); err != nil {
		return mr, failed(fmt.Errorf("SIGSTRUCT: %w", err))
	}
	if sgx.Measurement(css.EnclaveHash) != mr {
		return mr, failed(fmt.Errorf("the file measures %s but its SIGSTRUCT signs %s", mr, sgx.Measurement(css.EnclaveHash)))
	}
	return mr, nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ---- magectl group verify ----

type verifyReport struct {
	OK       bool              `json:"ok"`
	Members  []verifyMember    `json:"members"`
	Problems []string          `json:"problems,omitempty"`
	Group    []sgx.Measurement `json:"group,omitempty"`
	NotGiven int               `json:"members_not_given,omitempty"` // table members whose files were not given

	badInput bool // a file could not be read or is not a signed member
}

type verifyMember struct {
	File      string          `json:"file"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	Index     int             `json:"index"`
	OK        bool            `json:"ok"`
}

func runGroupVerify(e *env, args []string) error {
	fs := newFlagSet(e.stderr, "group verify", "group verify [--json] [--manifest group.json] SIGNED_MEMBER...")
	jsonOut := fs.Bool("json", false, "print JSON")
	manifest := fs.String("manifest", "", "also check the members against this group manifest (`group.json` from group sign)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return mapFlagErr(err)
	}
	if len(pos) == 0 {
		return usagef("want the signed members to verify")
	}
	var man *mage.Manifest
	if *manifest != "" {
		raw, err := os.ReadFile(*manifest)
		if err != nil {
			return err
		}
		if man, err = mage.ParseManifest(raw); err != nil {
			return fmt.Errorf("%s: %w", *manifest, err)
		}
	}
	rep := verifyGroup(e.ctx, pos, man)
	if *jsonOut {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		for _, m := range rep.Members {
			status := "ok"
			if !m.OK {
				status = "MISMATCH"
			}
			fmt.Fprintf(e.stdout, "%-8s member %d %s %s\n", status, m.Index, m.MRENCLAVE, m.File)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(e.stdout, "problem:", p)
		}
		if rep.NotGiven > 0 {
			fmt.Fprintf(e.stdout, "note: the table has %d members; %d of them were not given and are only derived\n", len(rep.Group), rep.NotGiven)
		}
	}
	if rep.badInput {
		return fmt.Errorf("%d problem(s) in the group, some files are not signed members", len(rep.Problems))
	}
	if !rep.OK {
		return failed(fmt.Errorf("%d problem(s) in the group", len(rep.Problems)))
	}
	return nil
}

// verifyGroup checks that every member's table derives every member's real
// MRENCLAVE (the one its SIGSTRUCT carries, recomputed by the loader replay).
func verifyGroup(ctx context.Context, paths []string, man *mage.Manifest) *verifyReport {
	rep := &verifyReport{OK: true}
	problem := func(format string, a ...any) {
		rep.OK = false
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
	}
	type loaded struct {
		section []byte
		mr      sgx.Measurement
		id      sgx.Identity
	}
	var ms []loaded
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			problem("%v", err)
			rep.badInput = true
			continue
		}
		signed, section, err := signedMageSection(raw)
		if err != nil {
			problem("%s: %v", p, err)
			rep.badInput = true
			continue
		}
		mr, err := checkSigned(ctx, signed)
		if err != nil && mr == (sgx.Measurement{}) {
			problem("%s: %v", p, err)
			rep.badInput = true
			continue
		}
		ok := err == nil
		if !ok {
			problem("%s: %v", p, err)
		}
		ms = append(ms, loaded{section, mr, signed.Sigstruct().SignedIdentity()})
		rep.Members = append(rep.Members, verifyMember{File: p, MRENCLAVE: mr, Index: -1, OK: ok})
	}
	if len(ms) == 0 {
		return rep
	}
	// Every member's table must be the same table and derive everyone.
	for i := range ms {
		all, err := mage.DeriveAllContext(ctx, ms[i].section, 0)
		if err != nil {
			problem("%s: %v", rep.Members[i].File, err)
			rep.Members[i].OK = false
			continue
		}
		if rep.Group == nil {
			rep.Group = all
		}
		for j := range ms {
			idx := -1
			for k, m := range all {
				if m == ms[j].mr {
					idx = k
				}
			}
			if idx < 0 {
				problem("%s's table does not derive the MRENCLAVE %s of %s", rep.Members[i].File, ms[j].mr, rep.Members[j].File)
				rep.Members[j].OK = false
				continue
			}
			if i == j {
				rep.Members[i].Index = idx
			}
		}
	}
	for i, m := range rep.Members {
		for j := range i {
			if m.Index >= 0 && m.Index == rep.Members[j].Index {
				problem("%s and %s are the same member %d", m.File, rep.Members[j].File, m.Index)
			}
		}
	}
	rep.NotGiven = max(0, len(rep.Group)-len(ms))
	if man != nil {
		// The manifest must describe this very group: the same table, the
		// same members in the same order, each with the identity its
		// signed file carries.
		if !slices.Equal(man.Measurements(), rep.Group) {
			problem("the manifest's members are not the group the tables derive")
		}
		for i, m := range ms {
			sum := sha256.Sum256(m.section)
			if hex.EncodeToString(sum[:]) != man.TableSHA256 {
				problem("%s: its table's SHA-256 is not the manifest's table_sha256", rep.Members[i].File)
				rep.Members[i].OK = false
			}
			idx := rep.Members[i].Index
			if idx < 0 || idx >= len(man.Members) {
				continue
			}
			if got, want := m.id, man.Members[idx].Identity; got != want {
				problem("%s: identity %+v differs from the manifest's member %d (%s)", rep.Members[i].File, got, idx, man.Members[idx].Name)
				rep.Members[i].OK = false
			}
		}
	}
	return rep
}

// signedMageSection parses a signed member once and returns it with its
// .sgx_mage section.
func signedMageSection(file []byte) (*sgxsdk.Signed, []byte, error) {
	s, err := sgxsdk.ParseSigned(file)
	if err != nil {
		return nil, nil, err
	}
	section := s.ELF.MageSection()
	if section == nil {
		return nil, nil, mage.ErrNoSection
	}
	return s, section, nil
}
