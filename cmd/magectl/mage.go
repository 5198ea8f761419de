package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// ---- magectl group ----

func runGroup(e *env, args []string) error {
	return dispatch(e, args, "group", `Usage: magectl group <sign|verify|gendata|catsig> [flags]

  sign GROUP.json     sign every member of a group so each carries the
                      .sgx_mage table; writes the members and group.json
  verify MEMBER...    check that every member's table derives every
                      member's real MRENCLAVE
  gendata GROUP.json  two-step signing with keys kept elsewhere (an HSM):
                      write each member's signing material
  catsig GROUP.json   attach the signatures made over that material;
                      the members are byte-identical to "group sign"

Run "magectl group <command> --help" for flags.
`, map[string]func(*env, []string) error{"sign": runGroupSign, "verify": runGroupVerify,
		"gendata": runGroupGendata, "catsig": runGroupCatsig})
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
	fs := newFlagSet(e, "group sign", "group sign [flags] GROUP.json")
	date := fs.String("date", "", "SIGSTRUCT date `YYYYMMDD` (default: the group file's, $SOURCE_DATE_EPOCH, else today UTC)")
	manifest := fs.String("manifest", "", "where to write the group `manifest` (a file, or a folder to put it in; default: NAME.manifest.json beside the group file NAME.json or NAME.group.json)")
	force := fs.Bool("force", false, "overwrite existing outputs")
	workers := fs.Int("j", 0, "members signed in parallel (default: number of CPUs)")
	jsonOut := fs.Bool("json", false, "print the manifest as JSON on stdout")
	quiet := fs.Bool("q", false, "no progress on stderr")
	table := fs.String("table", "classic", "table `format`: classic (every entry in every member) or merkle (a root in one page, each member's proof in OUTPUT.proof)")
	updateKey := fs.String("update-key", "", "with --table merkle: commit the group to this Ed25519 update `key` (PEM, from keygen --update-key; public or private); with --predecessor: the predecessor's update key (private), which signs the successor")
	nextKey := fs.String("next-update-key", "", "with --predecessor: the update `key` the successor commits to (PEM, public or private; default: the --update-key), or \"none\" to make the successor final (no successor of it is ever accepted)")
	predecessor := fs.String("predecessor", "", "sign a successor of the updatable group whose manifest is `group.json`: members with \"keep\": true stay as they are, the others are signed now, the rest are dropped (implies --table merkle)")
	arg, err := parseOneArg(fs, args, "group file")
	if err != nil {
		return err
	}
	if *table != "classic" && *table != "merkle" {
		return usagef("--table %q: want classic or merkle", *table)
	}
	if *predecessor != "" {
		if flagSet(fs, "table") && *table != "merkle" {
			return usagef("--predecessor signs a Merkle table, not --table %s", *table)
		}
		if *updateKey == "" {
			return usagef("--predecessor needs --update-key: the private update key the predecessor commits to")
		}
		*table = "merkle"
	}
	if *nextKey != "" && *predecessor == "" {
		return usagef("--next-update-key applies to a successor (--predecessor)")
	}
	if *updateKey != "" && *table != "merkle" {
		return usagef("--update-key needs --table merkle")
	}
	var gf *mage.GroupFile
	if *predecessor != "" {
		gf, err = readAnyGroupFile(arg)
	} else {
		gf, err = readGroupFile(arg)
	}
	if err != nil {
		return err
	}
	if *predecessor != "" {
		return runSuccessorSign(e, arg, gf, *predecessor, *updateKey, *nextKey, *date, *manifest, *force, *workers, *quiet, *jsonOut)
	}
	gs, err := openGroup(e, arg, gf, *date, *manifest, *force, nil, nil)
	if err != nil {
		return err
	}
	gs.merkle = *table == "merkle"
	if *updateKey != "" {
		if _, gs.updateKey, err = readUpdateKey(*updateKey); err != nil {
			return err
		}
	}
	if gs.hasGramine() || gs.hasVMs() {
		return gs.runAny(e, *quiet, *jsonOut)
	}
	return gs.run(e, *workers, *quiet, *jsonOut, nil)
}

// groupSigning is one group-signing run from a group file: its members'
// inputs (loaded on demand, one member per worker in memory), the outputs
// staged in a durable batch, and the manifest.
type groupSigning struct {
	gf     *mage.GroupFile
	date   time.Time
	mpath  string
	force  bool
	merkle bool // a Merkle table; each member's proof is written beside it
	// An updatable group: its update key, or the successor it signs and
	// the kept members (their manifest entries and new proof files).
	updateKey ed25519.PublicKey
	succ      *mage.Successor
	kept      []mage.ManifestMember
	keys      map[string]*rsa.PrivateKey
	pubKey    bool // keys may be public (catsig): Member.Key stays nil

	// Every output is checked, as it is staged, against every input of the
	// run and every other output: no flow overwrites an input, with or
	// without -force.
	mu     sync.Mutex
	inputs map[fileKey]string
	staged map[fileKey]string
}

// stage stages an output after checking that it is neither an input of
// the run nor another output.
func (g *groupSigning) stage(e *env, b *atomicfile.Batch, name string, data []byte, perm os.FileMode) error {
	if name != "-" {
		k := keyOf(name)
		g.mu.Lock()
		in, isInput := g.inputs[k]
		prev, twice := g.staged[k]
		if !isInput && !twice {
			g.staged[k] = name
		}
		g.mu.Unlock()
		switch {
		case isInput:
			return usagef("output %s is also an input (%s): refusing to overwrite an input, with or without -force", name, in)
		case twice:
			return usagef("two outputs are the same file: %s and %s", prev, name)
		}
	}
	return stageOutput(e, b, name, data, perm, g.force)
}

// readGroupFile reads and checks a group file; kept members need a
// predecessor (group sign --predecessor).
func readGroupFile(arg string) (*mage.GroupFile, error) {
	gf, err := readAnyGroupFile(arg)
	if err != nil {
		return nil, err
	}
	for _, m := range gf.Members {
		if m.Keep {
			return nil, usagef("%s: member %s is kept from a predecessor: sign with group sign --predecessor", arg, m.Name)
		}
	}
	return gf, nil
}

func readAnyGroupFile(arg string) (*mage.GroupFile, error) {
	raw, err := os.ReadFile(arg)
	if err != nil {
		return nil, err
	}
	gf, err := mage.ParseGroupFile(raw, filepath.Dir(arg))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	return gf, nil
}

// defaultManifestPath is where group sign writes the manifest of the group
// file arg by default: beside it, named after it (payments.group.json and
// payments.json give payments.manifest.json), so that it is never the
// group file itself and two group files in a folder do not share it.
func defaultManifestPath(arg string) string {
	stem := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(arg), ".json"), ".group")
	return filepath.Join(filepath.Dir(arg), stem+".manifest.json")
}

// checkManifestOwner refuses to write the manifest of group name over the
// manifest of another group, with or without -force.
func checkManifestOwner(mpath, name string) error {
	// Only a regular file can hold another group's manifest (a device or
	// FIFO may never end, or block).
	if fi, err := os.Stat(mpath); err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
		return nil
	}
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil
	}
	other, err := mage.ParseManifest(raw)
	if err != nil || other.Name == name {
		return nil
	}
	return usagef("%s is the manifest of another group (%q, not %q): choose another --manifest for this one (--force would destroy it, so it is refused too)", mpath, other.Name, name)
}

// openGroup prepares signing the group gf read from arg: the date, the
// manifest's path, and the output checks (extraOutputs, if not nil, are
// the only outputs, as for gendata's material).
func openGroup(e *env, arg string, gf *mage.GroupFile, date, manifest string, force bool, extraOutputs, extraInputs []string) (*groupSigning, error) {
	if date == "" {
		date = gf.Date
	}
	sigDate, err := signingDate(e, date)
	if err != nil {
		return nil, err
	}
	mpath := manifest
	switch fi, err := os.Stat(mpath); {
	case mpath == "":
		mpath = defaultManifestPath(arg)
	case err == nil && fi.IsDir():
		mpath = filepath.Join(mpath, filepath.Base(defaultManifestPath(arg)))
	}
	if err := checkManifestOwner(mpath, gf.Name); err != nil {
		return nil, err
	}
	inputs := append([]string{arg, gf.Libpal}, extraInputs...)
	for _, m := range gf.Members {
		inputs = append(inputs, m.Enclave, m.Manifest, m.Config, m.Key)
		inputs = append(inputs, m.VMInputs()...)
	}
	outs := append(outputsOf(gf), mpath)
	for _, m := range gf.Members {
		outs = append(outs, m.Sig, m.Table)
	}
	if extraOutputs != nil {
		outs = extraOutputs
	}
	if err := checkOutputs(inputs, outs); err != nil {
		return nil, err
	}
	if !force {
		for _, p := range outs {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return nil, describeExists(p)
			}
		}
	}
	g := &groupSigning{gf: gf, date: sigDate, mpath: mpath, force: force, keys: map[string]*rsa.PrivateKey{},
		inputs: map[fileKey]string{}, staged: map[fileKey]string{}}
	for _, p := range inputs {
		if p != "" && p != "-" {
			g.inputs[keyOf(p)] = p
		}
	}
	return g, nil
}

// loader returns the member loader for mage.SignGroupStream: files are read
// each time, keys parsed once per distinct file.
func (g *groupSigning) loader() func(int) (mage.Member, error) {
	var mu sync.Mutex
	return func(i int) (mage.Member, error) {
		mf := g.gf.Members[i]
		m, err := loadMemberFiles(mf)
		if err != nil {
			return mage.Member{}, err
		}
		if g.pubKey {
			return m, nil
		}
		mu.Lock()
		k, ok := g.keys[mf.Key]
		mu.Unlock()
		if !ok {
			if k, err = readKey(mf.Key); err != nil {
				return mage.Member{}, err
			}
			mu.Lock()
			g.keys[mf.Key] = k
			mu.Unlock()
		}
		m.Key = k
		return m, nil
	}
}

// run signs the group (with sign attaching external signatures, or with
// the members' keys), staging each member as it is signed, then the
// manifest, and commits them all at once.
func (g *groupSigning) run(e *env, workers int, quiet, jsonOut bool, sign func(int, *sgx.Sigstruct) error) error {
	files := outputsOf(g.gf)
	var batch atomicfile.Batch
	defer batch.Abort()
	// Members stream through one per worker, so the live heap stays under
	// a megabyte whatever the group's size; a lower GC target keeps the
	// garbage between collections (each member allocates its files anew)
	// from setting the peak instead.
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	opts := mage.SignOptions{Date: g.date, Workers: workers, Sign: sign, Merkle: g.merkle, UpdateKey: g.updateKey, Successor: g.succ}
	start := time.Now()
	if !quiet && len(g.gf.Members) >= 10 {
		opts.Progress = progressPrinter(e)
	}
	kept := len(g.kept)
	sg, err := mage.SignGroupStream(e.ctx, len(g.gf.Members), g.loader(), opts, func(sm *mage.SignedMember) error {
		return g.stage(e, &batch, files[sm.Index-kept], sm.File, 0o755)
	})
	if err != nil {
		return err
	}
	man := sg.Manifest(g.gf.Name, files)
	if err := g.stageProofs(e, &batch, man, files, sg.Proofs, sg.Lineage, sg.LineageProofs); err != nil {
		return err
	}
	return g.commit(e, &batch, man, start, quiet, jsonOut)
}

// stageProofs stages a Merkle group's proofs beside its members (files, the
// members signed now) and, in an updatable group, every member's lineage
// proof (the kept members' where the group file says, and their manifest
// entries first) and the lineage beside the manifest.
func (g *groupSigning) stageProofs(e *env, batch *atomicfile.Batch, man *mage.Manifest, files []string, proofs []*mage.MembershipProof, lineage *mage.Lineage, lineageProofs []*mage.LineageProof) error {
	if lineage == nil {
		for i, p := range proofs {
			if err := g.stage(e, batch, proofPathOf(files[i]), p.Marshal(), 0o644); err != nil {
				return err
			}
			man.Members[i].Proof = proofPathOf(files[i])
		}
		return nil
	}
	for i := range man.Members {
		man.Members[i].Proof = proofPathOf(files[i])
	}
	man.Members = append(slices.Clone(g.kept), man.Members...)
	for i, p := range lineageProofs {
		if err := g.stage(e, batch, man.Members[i].Proof, p.Marshal(), 0o644); err != nil {
			return err
		}
	}
	lpath := strings.TrimSuffix(g.mpath, ".json") + ".lineage"
	if err := g.stage(e, batch, lpath, lineage.Marshal(), 0o644); err != nil {
		return err
	}
	man.Lineage = filepath.Base(lpath)
	return nil
}

// commit stages the group manifest, commits every output together, and
// reports.
func (g *groupSigning) commit(e *env, batch *atomicfile.Batch, man *mage.Manifest, start time.Time, quiet, jsonOut bool) error {
	// Written with paths relative to its own folder, so the group's folder
	// can move; printed with paths from here.
	written := *man
	written.Members = slices.Clone(man.Members)
	dir := filepath.Dir(g.mpath)
	if g.mpath == "-" {
		dir = "."
	}
	if err := written.RelativeTo(dir); err != nil {
		return err
	}
	mj, _ := json.MarshalIndent(&written, "", "  ")
	mj = append(mj, '\n')
	if err := g.stage(e, batch, g.mpath, mj, 0o644); err != nil {
		return err
	}
	if err := batch.Commit(); err != nil {
		return err
	}
	if jsonOut {
		_, err := e.stdout.Write(mj)
		return err
	}
	if !quiet {
		format := man.Format
		if format == "" {
			format = "classic"
		}
		kept := 0
		for _, m := range man.Members {
			if m.Kept {
				kept++
			}
		}
		what := fmt.Sprintf("signed %d members", len(man.Members)-kept)
		if man.UpdateKey != "" {
			format = fmt.Sprintf("%s table, epoch %d", format, man.Epoch)
		}
		if kept > 0 {
			what += fmt.Sprintf(", kept %d", kept)
		}
		fmt.Fprintf(e.stderr, "%s (%s) in %v; manifest %s\n", what, format, time.Since(start).Round(time.Millisecond), g.mpath)
	}
	printMembers(e.stdout, man)
	return nil
}

// stageOutput stages an output in a batch ("-" goes to standard output
// at once).
func stageOutput(e *env, b *atomicfile.Batch, name string, data []byte, perm os.FileMode, replace bool) error {
	if name == "-" {
		_, err := e.stdout.Write(data)
		return err
	}
	return b.Stage(name, data, perm, replace)
}

// progressPrinter reports progress on standard error: redrawn in place on
// a terminal, else (a log, a pipe) a line at most every progressEvery and
// at the end of each stage.
func progressPrinter(e *env) func(string, int, int) {
	if isTerminal(e.stderr) {
		return func(stage string, done, total int) {
			fmt.Fprintf(e.stderr, "\r%s %d/%d", stage, done, total)
			if done == total {
				fmt.Fprintln(e.stderr)
			}
		}
	}
	var mu sync.Mutex
	var last time.Time
	return func(stage string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); done == total || now.Sub(last) >= progressEvery {
			last = now
			fmt.Fprintf(e.stderr, "%s %d/%d\n", stage, done, total)
		}
	}
}

// progressEvery is how often progress is logged when standard error is not
// a terminal.
const progressEvery = 5 * time.Second

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && fi.Mode()&os.ModeDevice != 0
}

// materialName is where group gendata writes member i's signing material
// and where group catsig looks for its signature.
func materialName(dir string, i int, name string) (material, signature string) {
	base := filepath.Join(dir, fmt.Sprintf("%03d-%s", i, name))
	return base + ".material", base + ".sig"
}

func runGroupGendata(e *env, args []string) error {
	fs := newFlagSet(e, "group gendata", `group gendata [flags] --out DIR GROUP.json

Writes DIR/NNN-NAME.material for every member: the 256 bytes (SIGSTRUCT
header and body) its key must sign with RSA-3072 PKCS#1 v1.5 over SHA-256,
as for "magectl gendata". Put each 384-byte big-endian signature in
DIR/NNN-NAME.sig, then run "magectl group catsig".
`)
	date := fs.String("date", "", "SIGSTRUCT date `YYYYMMDD` (default: the group file's, $SOURCE_DATE_EPOCH, else today UTC)")
	out := fs.String("out", "", "`directory` for the signing material")
	force := fs.Bool("force", false, "overwrite existing material")
	workers := fs.Int("j", 0, "members measured in parallel (default: number of CPUs)")
	arg, err := parseOneArg(fs, args, "group file")
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	gf, err := readGroupFile(arg)
	if err != nil {
		return err
	}
	var mats []string
	for i, m := range gf.Members {
		mat, _ := materialName(*out, i, m.Name)
		mats = append(mats, mat)
	}
	gs, err := openGroup(e, arg, gf, *date, "", *force, mats, nil)
	if err != nil {
		return err
	}
	gs.pubKey = true // the private keys are not needed
	var batch atomicfile.Batch
	defer batch.Abort()
	_, err = mage.GroupSigningMaterial(e.ctx, len(gf.Members), gs.loader(), mage.SignOptions{Date: gs.date, Workers: *workers},
		func(sm *mage.SignedMember) error {
			return batch.Stage(mats[sm.Index], sm.Sigstruct.SigningMaterial(), 0o644, *force)
		})
	if err != nil {
		return err
	}
	return batch.Commit()
}

func runGroupCatsig(e *env, args []string) error {
	fs := newFlagSet(e, "group catsig", `group catsig [flags] --sigs DIR GROUP.json

Attaches the signatures DIR/NNN-NAME.sig made over the material that
"magectl group gendata" wrote to DIR, and writes the signed members and the
manifest as "magectl group sign" does. Each member's "key" in the group
file may be its public key. The date comes from the material.
`)
	dir := fs.String("sigs", "", "`directory` with the material and the signatures")
	manifest := fs.String("manifest", "", "where to write the group `manifest` (a file, or a folder to put it in; default: NAME.manifest.json beside the group file NAME.json or NAME.group.json)")
	force := fs.Bool("force", false, "overwrite existing outputs")
	workers := fs.Int("j", 0, "members signed in parallel (default: number of CPUs)")
	jsonOut := fs.Bool("json", false, "print the manifest as JSON on stdout")
	quiet := fs.Bool("q", false, "no progress on stderr")
	arg, err := parseOneArg(fs, args, "group file")
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--sigs is required")
	}
	gf, err := readGroupFile(arg)
	if err != nil {
		return err
	}
	// The date is the one signed: read it from member 0's material.
	mat0, _ := materialName(*dir, 0, gf.Members[0].Name)
	m0, err := os.ReadFile(mat0)
	if err != nil {
		return err
	}
	if len(m0) != 256 {
		return fmt.Errorf("%s: signing material of %d bytes, want 256 (from group gendata)", mat0, len(m0))
	}
	d := binary.LittleEndian.Uint32(m0[20:])
	gs, err := openGroup(e, arg, gf, fmt.Sprintf("%08x", d), *manifest, *force, nil, nil)
	if err != nil {
		return err
	}
	gs.pubKey = true
	return gs.run(e, *workers, *quiet, *jsonOut, func(i int, css *sgx.Sigstruct) error {
		mf := gf.Members[i]
		mat, sigPath := materialName(*dir, i, mf.Name)
		want, err := os.ReadFile(mat)
		if err != nil {
			return err
		}
		if !bytes.Equal(want, css.SigningMaterial()) {
			return failed(fmt.Errorf("%s does not match the member as it measures now (were the inputs or the date changed since group gendata?)", mat))
		}
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			return err
		}
		pub, err := readPublicKey(mf.Key)
		if err != nil {
			return err
		}
		if err := css.SetSignature(pub, sig); err != nil {
			return failed(fmt.Errorf("%s: %w", sigPath, err))
		}
		return nil
	})
}

func outputsOf(gf *mage.GroupFile) []string {
	out := make([]string, len(gf.Members))
	for i, m := range gf.Members {
		out[i] = m.Output
	}
	return out
}

// loadMemberFiles reads a member's enclave and config (not its key).
func loadMemberFiles(m mage.MemberFile) (mage.Member, error) {
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
	return mage.Member{Name: m.Name, ELF: elfBytes, Config: cfg}, nil
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
	vms := 0
	for _, mm := range m.Members {
		id := mm.Identity
		if mm.Kind == mage.KindSNP.String() {
			vms++
			fmt.Fprintf(tw, "%d\t%s\tSEV-SNP launch %s…\t-\t-\t-\n", mm.Index, mm.Name, mm.Launch[:48])
			continue
		}
		if mm.Kind == mage.KindTDX.String() {
			vms++
			fmt.Fprintf(tw, "%d\t%s\tTDX RTMR3 %s…\t-\t-\t-\n", mm.Index, mm.Name, mm.RTMR[3][:48])
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%d\t%d\n", mm.Index, mm.Name, id.MRENCLAVE, id.MRSIGNER.String()[:16], id.ISVProdID, id.ISVSVN)
	}
	tw.Flush()
	if m.SectionSize > 0 {
		fmt.Fprintf(w, "table sha256 %s (in a %d-byte .sgx_mage section)\n", m.TableSHA256, m.SectionSize)
	} else {
		fmt.Fprintf(w, "table sha256 %s (in each manifest's loader.env.MAGE_TABLE)\n", m.TableSHA256)
	}
	if vms > 0 {
		fmt.Fprintf(w, "each SNP VM boots with its command line file (mage.table=<the table's sha256>) and is handed the table; each TD is handed the table, its boot extending RTMR3 with its event\n")
	}
}

// signingDate picks the SIGSTRUCT date: the flag, else SOURCE_DATE_EPOCH
// (reproducible builds), else today in UTC.
func signingDate(e *env, flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse("20060102", flagValue)
		if err != nil || len(flagValue) != 8 {
			if t, err = time.Parse("2006-01-02", flagValue); err != nil || len(flagValue) != 10 {
				return time.Time{}, usagef("--date %q: want YYYYMMDD or YYYY-MM-DD", flagValue)
			}
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
	File     string       `json:"file"`
	Self     int          `json:"self"`
	Identity sgx.Identity `json:"identity"` // the file's own, verified (replayed and signed)
	Trusted  bool         `json:"trusted,omitempty"`
	// Members is every member's MRENCLAVE, from the table (classic and
	// versioned tables); absent in a Merkle group, whose table holds a root:
	// there, this member is identity.mrenclave, and the others are the
	// proven ones.
	Members []sgx.Measurement `json:"members,omitempty"`
	// In a group with confidential VM members: every member's kind, and
	// each VM's launch digest (SNP) or RTMR3 (TDX; its MRTD and RTMR0-2
	// are its entry's); its entry in members is zeros.
	Kinds    []string `json:"kinds,omitempty"`
	Launches []string `json:"launches,omitempty"`
	// In a Merkle group: the group's size, and the members derived from
	// the proofs given (--proof), each checked against this table's root.
	GroupSize int            `json:"group_size,omitempty"`
	Proven    []provenMember `json:"proven,omitempty"`
	// In an updatable group: the epoch of the newest table known (the
	// group's size is that table's).
	Epoch *uint32 `json:"epoch,omitempty"`
}

type provenMember struct {
	Index     uint64          `json:"index"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	Proof     string          `json:"proof"`
}

func runDerive(e *env, args []string) error {
	fs := newFlagSet(e, "derive", "derive [--json] [--trust MRENCLAVE] [--libpal PAL] SIGNED_MEMBER (an SDK enclave, or a Gramine member's .manifest.sgx with its .sig beside it)\n       magectl derive [--json] [--libpal PAL] --vm-cmdline FILE TABLE (an SEV-SNP member: the table it is handed, checked against its command line)")
	jsonOut := fs.Bool("json", false, "print JSON")
	libpal := fs.String("libpal", "", "the `libpal.so` Gramine members run (needed for Gramine members)")
	trust := fs.String("trust", "", "a trusted `MRENCLAVE` (hex) of this member: check the table belongs to it before trusting the group")
	proofs := fs.String("proof", "", "in a Merkle group, derive the members whose proof `files` (comma-separated) are given, from this member's table")
	selfProof := fs.String("self-proof", "", "this member's own proof `file` (default: SIGNED_MEMBER.proof)")
	vmCmdline := fs.String("vm-cmdline", "", "derive from a VM member's TABLE: the kernel command line `file` it boots with (or /proc/cmdline inside it), which must bind the table")
	arg, err := parseOneArg(fs, args, "signed member")
	if err != nil {
		return err
	}
	if *vmCmdline != "" {
		if *trust != "" || *proofs != "" || *selfProof != "" {
			return usagef("--vm-cmdline derives from a VM's table: --trust, --proof and --self-proof apply to enclaves")
		}
		pal, err := optionalLibpal(*libpal)
		if err != nil {
			return err
		}
		res, err := deriveVM(arg, *vmCmdline, pal)
		if err != nil {
			return err
		}
		if err := printDerived(e, res, *jsonOut); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "table bound by the VM's command line; which member the VM is, its launch digest says\n")
		return nil
	}
	var trusted *sgx.Measurement
	if *trust != "" {
		m, err := sgx.ParseMeasurement(*trust)
		if err != nil {
			return usagef("--trust: %v", err)
		}
		trusted = &m
	}
	pal, err := optionalLibpal(*libpal)
	if err != nil {
		return err
	}
	var proofFiles []string
	if *proofs != "" {
		proofFiles = strings.Split(*proofs, ",")
	}
	res, err := deriveFile(e.ctx, arg, trusted, pal, *selfProof, proofFiles)
	if err != nil {
		return err
	}
	return printDerived(e, res, *jsonOut)
}

// printDerived prints what derive found: JSON, or a line per member.
func printDerived(e *env, res *deriveResult, jsonOut bool) error {
	if jsonOut {
		return writeJSON(e.stdout, res)
	}
	for i, m := range res.Members {
		mark := ""
		if i == res.Self {
			mark = "  (self)"
		}
		if res.Launches != nil && res.Launches[i] != "" {
			what := "launch"
			if res.Kinds[i] == "tdx" {
				what = "RTMR3"
			}
			fmt.Fprintf(e.stdout, "%d %s %s %s\n", i, res.Kinds[i], what, res.Launches[i])
			continue
		}
		fmt.Fprintf(e.stdout, "%d %s%s\n", i, m, mark)
	}
	if res.GroupSize > 0 {
		if res.Epoch != nil {
			fmt.Fprintf(e.stdout, "updatable Merkle group, epoch %d, of %d members; this is member %d\n", *res.Epoch, res.GroupSize, res.Self)
		} else {
			fmt.Fprintf(e.stdout, "Merkle group of %d members; this is member %d\n", res.GroupSize, res.Self)
		}
		fmt.Fprintf(e.stdout, "%d %s  (self)\n", res.Self, res.Identity.MRENCLAVE)
		for _, p := range res.Proven {
			fmt.Fprintf(e.stdout, "%d %s  (from %s)\n", p.Index, p.MRENCLAVE, p.Proof)
		}
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
func deriveFile(ctx context.Context, path string, trusted *sgx.Measurement, pal *gramine.Libpal, selfProof string, proofFiles []string) (*deriveResult, error) {
	mf, err := loadMemberFile(ctx, path, pal)
	if err != nil {
		return nil, err
	}
	if mf.sigErr != nil {
		return nil, mf.sigErr
	}
	res := &deriveResult{File: path, Self: -1, Identity: mf.id}
	if trusted != nil && mf.mr != *trusted {
		return nil, failed(fmt.Errorf("%s measures %s, not the trusted MRENCLAVE %s", path, mf.mr, *trusted))
	}
	if mf.table.IsMerkle() {
		// Its own proof, beside it, must lead to its table's root and
		// derive it; then each given proof gives a member.
		if selfProof == "" {
			selfProof = proofPathOf(path)
		}
		own, err := readProofFile(selfProof)
		if err != nil {
			return nil, fmt.Errorf("%s is a member of a Merkle group: its proof: %w", path, err)
		}
		v, err := newMerkleView(mf, own)
		if err != nil {
			return nil, err
		}
		res.Self, res.GroupSize, res.Trusted = int(v.self), mf.table.Len(), trusted != nil
		for _, f := range proofFiles {
			p, err := readProofFile(f)
			if err != nil {
				return nil, err
			}
			mr, idx, err := v.derive(p)
			if err != nil {
				return nil, failed(fmt.Errorf("%s: %w", f, err))
			}
			res.Proven = append(res.Proven, provenMember{Index: idx, MRENCLAVE: mr, Proof: f})
		}
		if v.lineage != nil {
			res.Epoch = new(v.epoch)
			res.GroupSize = int(v.lineage.Head().Count)
		}
		return res, nil
	}
	if len(proofFiles) > 0 {
		return nil, usagef("--proof applies to members of a Merkle group; %s carries a classic table", path)
	}
	derived, err := mf.table.DeriveMembers()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.setMembers(derived)
	if res.Self = slices.Index(res.Members, mf.mr); res.Self < 0 {
		return nil, failed(fmt.Errorf("%s: its own MRENCLAVE %s is not in its table: the file is not a member of the group it carries", path, mf.mr))
	}
	res.Trusted = trusted != nil
	return res, nil
}

// setMembers records every member a table derives: MRENCLAVEs, and, in a
// group with confidential VMs, every member's kind and each VM's launch
// digest (SNP) or RTMR3 (TDX).
func (res *deriveResult) setMembers(derived []mage.Derived) {
	res.Members = make([]sgx.Measurement, len(derived))
	for i, x := range derived {
		res.Members[i] = x.MRENCLAVE
		if x.Kind != mage.KindSNP && x.Kind != mage.KindTDX {
			continue
		}
		if res.Launches == nil {
			res.Launches, res.Kinds = make([]string, len(derived)), make([]string, len(derived))
			for j := range derived {
				res.Kinds[j] = derived[j].Kind.String()
			}
		}
		res.Launches[i] = hex.EncodeToString(x.Launch[:])
		if x.Kind == mage.KindTDX {
			res.Launches[i] = hex.EncodeToString(x.TD.RTMR[3][:])
		}
	}
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
	Epoch    uint32            `json:"epoch,omitempty"`             // an updatable group: the newest table's epoch
	// The group's confidential VM members, as the manifest names them:
	// each member's table derives their launch digests (SNP) or TD
	// measurements (TDX); an SNP VM's command line file binds the table,
	// and a TD's table file is the table.
	VMs []verifyVM `json:"vms,omitempty"`

	badInput bool  // a file could not be read or is not a signed member
	usage    error // a flag the files need is missing (--libpal)
}

type verifyVM struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`   // snp or tdx
	Launch string `json:"launch"` // an SNP VM's launch digest; a TD's RTMR3
	File   string `json:"file"`   // an SNP VM's command line file; a TD's table file
	OK     bool   `json:"ok"`
}

type verifyMember struct {
	File      string          `json:"file"`
	MRENCLAVE sgx.Measurement `json:"mrenclave"`
	Index     int             `json:"index"`
	OK        bool            `json:"ok"`
}

func runGroupVerify(e *env, args []string) error {
	fs := newFlagSet(e, "group verify", "group verify [--json] [--manifest group.json] [--libpal PAL] [SIGNED_MEMBER...] (default: every member of the manifest)")
	jsonOut := fs.Bool("json", false, "print JSON")
	manifest := fs.String("manifest", "", "also check the members against this group `manifest` (NAME.manifest.json, from group sign)")
	libpal := fs.String("libpal", "", "the `libpal.so` Gramine members run (needed for Gramine members)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return mapFlagErr(err)
	}
	var man *mage.Manifest
	if *manifest != "" {
		if man, err = mage.LoadManifest(*manifest); err != nil {
			return err
		}
	}
	if len(pos) == 0 {
		if man == nil {
			return usagef("want the signed members to verify, or --manifest to verify all its members")
		}
		for _, mm := range man.Members {
			if mm.Kind == mage.KindSNP.String() || mm.Kind == mage.KindTDX.String() {
				continue // checked from the enclaves' tables and its boot inputs
			}
			if mm.File == "" {
				return fmt.Errorf("%s: member %d (%s) names no file: give the signed members", *manifest, mm.Index, mm.Name)
			}
			pos = append(pos, mm.File)
		}
	}
	pal, err := optionalLibpal(*libpal)
	if err != nil {
		return err
	}
	rep := verifyGroup(e.ctx, pos, man, pal)
	if rep.usage != nil {
		return rep.usage
	}
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
		for _, v := range rep.VMs {
			status := "ok"
			if !v.OK {
				status = "MISMATCH"
			}
			what := "launch"
			if v.Kind == "tdx" {
				what = "RTMR3"
			}
			fmt.Fprintf(e.stdout, "%-8s member %d %s %s %s %s\n", status, v.Index, v.Kind, what, v.Launch, v.File)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(e.stdout, "problem:", p)
		}
		if rep.Epoch > 0 {
			fmt.Fprintf(e.stdout, "updatable group: checked at epoch %d, the newest its members know\n", rep.Epoch)
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
func verifyGroup(ctx context.Context, paths []string, man *mage.Manifest, pal *gramine.Libpal) *verifyReport {
	rep := &verifyReport{OK: true}
	problem := func(format string, a ...any) {
		rep.OK = false
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
	}
	var ms []*memberFile
	for _, p := range paths {
		mf, err := loadMemberFile(ctx, p, pal)
		var u usageError
		if errors.As(err, &u) && rep.usage == nil {
			rep.usage = err
		}
		if err != nil {
			problem("%v", err)
			rep.badInput = true
			continue
		}
		if mf.sigErr != nil {
			problem("%v", mf.sigErr)
		}
		ms = append(ms, mf)
		rep.Members = append(rep.Members, verifyMember{File: p, MRENCLAVE: mf.mr, Index: -1, OK: mf.sigErr == nil})
	}
	if len(ms) == 0 {
		return rep
	}
	if ms[0].table.IsMerkle() {
		// Each proof is beside its member, unless the manifest says
		// where (a kept member's new proof).
		proofOf := map[string]string{}
		if man != nil {
			for _, mm := range man.Members {
				if mm.Proof != "" {
					proofOf[mm.File] = mm.Proof
				}
			}
		}
		proofPaths := make([]string, len(ms))
		for i, m := range ms {
			if proofPaths[i] = proofOf[m.path]; proofPaths[i] == "" {
				proofPaths[i] = proofPathOf(m.path)
			}
		}
		verifyMerkle(ms, rep, problem, proofPaths)
		if man != nil {
			// The members must be the manifest's, at their indices (in
			// the newest table), with the identities their files carry.
			if man.Format != "merkle" {
				problem("the manifest describes a %q table, the members carry a Merkle root", man.Format)
			}
			if man.UpdateKey != "" && rep.Epoch != man.Epoch {
				problem("the manifest is epoch %d, the members' proofs reach epoch %d", man.Epoch, rep.Epoch)
			}
			for i, m := range ms {
				idx := rep.Members[i].Index
				if idx < 0 {
					continue
				}
				if idx >= len(man.Members) || m.id != man.Members[idx].Identity {
					problem("%s: it is not the manifest's member %d", rep.Members[i].File, idx)
					rep.Members[i].OK = false
				}
			}
		}
		return rep
	}
	// Every member's table must be the same table and derive everyone.
	var launches map[int][48]byte      // the SNP members, by index
	var tds map[int]mage.TDMeasurement // the TDX members, by index
	for i := range ms {
		if err := ctx.Err(); err != nil {
			problem("%v", err)
			break
		}
		derived, err := ms[i].table.DeriveMembers()
		if err != nil {
			problem("%s: %v", rep.Members[i].File, err)
			rep.Members[i].OK = false
			continue
		}
		all := make([]sgx.Measurement, len(derived))
		for k, x := range derived {
			all[k] = x.MRENCLAVE
			if x.Kind == mage.KindSNP && launches == nil {
				launches = map[int][48]byte{}
			}
			if x.Kind == mage.KindTDX {
				if tds == nil {
					tds = map[int]mage.TDMeasurement{}
				}
				if m, seen := tds[k]; seen && m != x.TD {
					problem("%s's table derives TDX member %d differently from another member's", rep.Members[i].File, k)
				}
				tds[k] = x.TD
			}
			if x.Kind == mage.KindSNP {
				if l, seen := launches[k]; seen && l != x.Launch {
					problem("%s's table derives VM member %d as %x, another member's as %x", rep.Members[i].File, k, x.Launch, l)
				}
				launches[k] = x.Launch
			}
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
	rep.NotGiven = max(0, len(rep.Group)-len(ms)-len(launches)-len(tds))
	if man != nil {
		// The manifest must describe this very group: the same table, the
		// same members in the same order, each with the identity its
		// signed file carries.
		if want := man.Measurements(); rep.Group != nil && !slices.Equal(want, rep.Group) {
			if len(want) != len(rep.Group) {
				problem("the manifest lists %d members, the tables derive %d", len(want), len(rep.Group))
			}
			for k := range min(len(want), len(rep.Group)) {
				if want[k] != rep.Group[k] {
					problem("member %d (%s): the manifest says MRENCLAVE %s, the tables derive %s", k, man.Members[k].Name, want[k], rep.Group[k])
				}
			}
		}
		checkVMs(rep, man, launches, tds, problem)
		for i, m := range ms {
			if m.tableSHA != man.TableSHA256 {
				problem("%s: its table's SHA-256 is not the manifest's table_sha256", rep.Members[i].File)
				rep.Members[i].OK = false
			}
			idx := rep.Members[i].Index
			if idx < 0 || idx >= len(man.Members) {
				continue
			}
			if got, want := m.id, man.Members[idx].Identity; got != want {
				problem("%s: member %d (%s) differs from the manifest: %s", rep.Members[i].File, idx, man.Members[idx].Name, identityDiff(got, want))
				rep.Members[i].OK = false
			}
		}
	}
	return rep
}

// identityDiff names the fields in which got differs from want, each with
// both values (in hex for measurements).
func identityDiff(got, want sgx.Identity) string {
	var d []string
	add := func(name string, g, w any) { d = append(d, fmt.Sprintf("%s %v, the manifest says %v", name, g, w)) }
	if got.MRENCLAVE != want.MRENCLAVE {
		add("MRENCLAVE", got.MRENCLAVE, want.MRENCLAVE)
	}
	if got.MRSIGNER != want.MRSIGNER {
		add("MRSIGNER", got.MRSIGNER, want.MRSIGNER)
	}
	if got.Attributes != want.Attributes {
		add("ATTRIBUTES", got.Attributes, want.Attributes)
	}
	if got.MiscSelect != want.MiscSelect {
		add("MISCSELECT", fmt.Sprintf("%#x", got.MiscSelect), fmt.Sprintf("%#x", want.MiscSelect))
	}
	if got.ISVProdID != want.ISVProdID {
		add("ISVPRODID", got.ISVProdID, want.ISVProdID)
	}
	if got.ISVSVN != want.ISVSVN {
		add("ISVSVN", got.ISVSVN, want.ISVSVN)
	}
	if got.ConfigID != want.ConfigID || got.ConfigSVN != want.ConfigSVN || got.ISVExtProdID != want.ISVExtProdID || got.ISVFamilyID != want.ISVFamilyID {
		d = append(d, "its KSS fields (CONFIGID, CONFIGSVN, ISVEXTPRODID, ISVFAMILYID) differ")
	}
	return strings.Join(d, "; ")
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

// readPublicKey reads a public key, or the public half of a private key.
func readPublicKey(path string) (*rsa.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := sgx.LoadPublicKey(raw)
	if err == nil {
		return pub, nil
	}
	if k, kerr := sgx.LoadSigningKey(raw); kerr == nil {
		return &k.PublicKey, nil
	}
	return nil, fmt.Errorf("%s: %w", path, err)
}

// verifyMerkle checks members of a Merkle group: each one's proof (beside
// it, or where the manifest says) derives it from its own table, and every
// member's table derives every other member from that member's proof. In
// an updatable group the proofs are checked newest lineage first, so that
// every member knows the newest table before it meets a member that table
// dropped.
func verifyMerkle(ms []*memberFile, rep *verifyReport, problem func(string, ...any), proofPaths []string) {
	proofs := make([]*memberProof, len(ms))
	for i := range ms {
		p, err := readProofFile(proofPaths[i])
		if err != nil {
			problem("%s: its proof: %v", ms[i].path, err)
			rep.Members[i].OK = false
			continue
		}
		proofs[i] = p
	}
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	epochs := func(i int) int {
		if proofs[i] == nil || proofs[i].lineage == nil {
			return 0
		}
		return len(proofs[i].lineage.Lineage.Tables)
	}
	slices.SortStableFunc(order, func(a, b int) int { return epochs(b) - epochs(a) })
	for i, m := range ms {
		if !m.table.IsMerkle() {
			problem("%s carries a classic table, the others a Merkle root", m.path)
			rep.Members[i].OK = false
			continue
		}
		if proofs[i] == nil {
			continue
		}
		v, err := newMerkleView(m, proofs[i])
		if err != nil {
			problem("%v", err)
			rep.Members[i].OK = false
			continue
		}
		rep.Members[i].Index = int(v.self)
		for _, j := range order {
			if proofs[j] == nil {
				continue
			}
			mr, _, err := v.derive(proofs[j])
			switch {
			case err != nil:
				problem("%s's table does not derive %s from its proof: %v", m.path, ms[j].path, err)
				rep.Members[j].OK = false
			case mr != ms[j].mr:
				problem("%s's table derives MRENCLAVE %s from the proof of %s, which measures %s", m.path, mr, ms[j].path, ms[j].mr)
				rep.Members[j].OK = false
			}
		}
		if v.lineage != nil {
			rep.Epoch = max(rep.Epoch, v.epoch)
		}
	}
}

// checkVMs checks a group's confidential VM members against the manifest:
// the launch digest (SNP) or TD measurement (TDX) the members' tables
// derive, and the file written for each: an SNP VM's command line, which
// must be the manifest's and bind its table, or a TD's table.
func checkVMs(rep *verifyReport, man *mage.Manifest, launches map[int][48]byte, tds map[int]mage.TDMeasurement, problem func(string, ...any)) {
	for _, mm := range man.Members {
		if mm.Kind == mage.KindTDX.String() {
			v := verifyVM{Index: mm.Index, Name: mm.Name, Kind: "tdx", Launch: mm.RTMR[3], File: mm.File, OK: true}
			bad := func(format string, a ...any) {
				problem("TDX member %d (%s): "+format, append([]any{mm.Index, mm.Name}, a...)...)
				v.OK = false
			}
			m, ok := tds[mm.Index]
			want := mm.MRTD + strings.Join(mm.RTMR, "")
			got := hex.EncodeToString(m.MRTD[:])
			for _, r := range m.RTMR {
				got += hex.EncodeToString(r[:])
			}
			switch {
			case !ok:
				bad("no member's table derives it: no enclave of the group was given")
			case got != want:
				bad("the manifest's MRTD and RTMRs are not those the tables derive")
			}
			if mm.File != "" {
				if raw, err := readBounded(mm.File, 16<<20); err != nil {
					bad("%v", err)
				} else if sha256Hex(raw) != man.TableSHA256 {
					bad("%s is not the manifest's table", mm.File)
				}
			}
			rep.VMs = append(rep.VMs, v)
			continue
		}
		if mm.Kind != mage.KindSNP.String() {
			continue
		}
		v := verifyVM{Index: mm.Index, Name: mm.Name, Kind: "snp", Launch: mm.Launch, File: mm.File, OK: true}
		bad := func(format string, a ...any) {
			problem("VM member %d (%s): "+format, append([]any{mm.Index, mm.Name}, a...)...)
			v.OK = false
		}
		switch l, ok := launches[mm.Index]; {
		case !ok:
			bad("no member's table derives it: no enclave of the group was given")
		case hex.EncodeToString(l[:]) != mm.Launch:
			bad("the manifest says launch digest %s, the tables derive %x", mm.Launch, l)
		}
		if mm.File != "" {
			raw, err := readBounded(mm.File, mage.MaxCmdline+200)
			switch {
			case err != nil:
				bad("%v", err)
			case string(raw) != mm.Cmdline:
				bad("%s is not the command line the manifest records", mm.File)
			default:
				if h, err := mage.CmdlineTable(string(raw)); err != nil || hex.EncodeToString(h[:]) != man.TableSHA256 {
					bad("%s does not bind the manifest's table", mm.File)
				}
			}
		}
		rep.VMs = append(rep.VMs, v)
	}
}
