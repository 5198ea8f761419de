package mage

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
	"github.com/magesgx/mage/sgxsdk"
)

// Member is one enclave to sign into a group.
type Member struct {
	Name    string
	ELF     []byte         // the unsigned SDK enclave; it must have a .sgx_mage section
	Config  *sgxsdk.Config // nil means the SDK signer's defaults
	Key     *rsa.PrivateKey
	Options *sgxsdk.Options // nil means the signer's default checks
}

// SignOptions tune SignGroup and SignGroupStream.
type SignOptions struct {
	// Date is the SIGSTRUCT date (its day, in UTC); required, and within
	// years 1 to 9999.
	Date    time.Time
	Workers int // parallel members; <= 0 means GOMAXPROCS
	// Progress, if not nil, is called after each member finishes a stage
	// ("measure" or "sign"), from any goroutine, one call at a time.
	Progress func(stage string, done, total int)
	// Sign, if not nil, signs member i's SIGSTRUCT instead of the member's
	// Key, for keys kept outside the process (an HSM): it sets the
	// signature with css.SetSignature. The SIGSTRUCT is verified after.
	Sign func(i int, css *sgx.Sigstruct) error
	// Merkle signs a Merkle group: every member's section holds the
	// versioned header and the root of the members' Merkle tree (one page
	// whatever the group's size), and SignedGroup.Proofs has each
	// member's membership proof.
	Merkle bool
	// UpdateKey, with Merkle, commits the group to this Ed25519 update
	// key: its holder may sign successors of the group (Successor), which
	// its members then accept. SignedGroup.Lineage starts at this table.
	UpdateKey ed25519.PublicKey
	// Successor, with Merkle, signs a successor of an updatable group
	// rather than a new group.
	Successor *Successor
}

// Successor describes the successor of an updatable group: what it
// follows, what it keeps and who signs the successor statement.
type Successor struct {
	// Lineage is the group's lineage so far; its newest table is the
	// predecessor. It is verified from its first table.
	Lineage *Lineage
	// Key is the update key the predecessor commits to; it signs the
	// successor statement.
	Key ed25519.PrivateKey
	// NextKey is the update key the successor commits to (empty: Key's
	// public half).
	NextKey ed25519.PublicKey
	// Keep lists the members kept unchanged, by their lineage proofs (from
	// the predecessor): their signed files stay as they are. They come
	// first in the successor's table, in this order, then the members
	// signed now. The predecessor's other members are dropped.
	Keep []*LineageProof
}

// kept returns the number of members a successor keeps (0 for a new
// group): a signed member's Index is its position among the members
// signed plus kept.
func (o *SignOptions) kept() int {
	if o.Successor == nil {
		return 0
	}
	return len(o.Successor.Keep)
}

// updatable reports whether the group signed is updatable: committed to
// an update key, or a successor.
func (o *SignOptions) updatable() bool { return o.UpdateKey != nil || o.Successor != nil }

// checkLineage refuses update options without a Merkle table.
func (o *SignOptions) checkLineage() error {
	if o.updatable() && !o.Merkle {
		return fmt.Errorf("%w: update keys and successors need a Merkle table (SignOptions.Merkle)", ErrLineage)
	}
	return nil
}

// SignedMember is one signed member of a group.
type SignedMember struct {
	Index     int
	Name      string
	File      []byte // the signed enclave file
	Sigstruct *sgx.Sigstruct
	MRENCLAVE sgx.Measurement
	Entry     Entry
}

// SignedGroup is the result of SignGroup.
type SignedGroup struct {
	Section []byte // the .sgx_mage section written into every member
	Members []SignedMember
	// Proofs holds every member's membership proof in a Merkle group
	// (SignOptions.Merkle), nil otherwise.
	Proofs []*MembershipProof
	// In an updatable group (SignOptions.UpdateKey or Successor): its
	// lineage, newest table last, and the lineage proof of every member of
	// the newest table: the kept members first (the members are then at
	// Members[i].Index), then the members signed now.
	Lineage       *Lineage
	LineageProofs []*LineageProof
}

// Errors of group signing.
var (
	ErrNoSection     = errors.New("mage: enclave has no .sgx_mage section")
	ErrSectionSize   = errors.New("mage: members' .sgx_mage sections differ in size")
	ErrDuplicate     = errors.New("mage: duplicate member")
	ErrEmptyGroup    = errors.New("mage: empty group")
	ErrMissingKey    = errors.New("mage: member has no signing key")
	ErrMissingDate   = errors.New("mage: no SIGSTRUCT date")
	errStageCanceled = errors.New("canceled")
)

// SignGroup signs every member so that each carries the group's .sgx_mage
// table. Each member is measured once: the state before the section gives
// its table entry, and its MRENCLAVE is finished from that state over the
// table, exactly as a member derives it. The output is byte-identical to the
// prototype's flow (genmage for every member, then signmage for every
// member) with the same inputs and date.
//
// SignGroup returns every signed file; SignGroupStream signs groups of any
// size with memory flat in the group's size.
func SignGroup(ctx context.Context, members []Member, opts SignOptions) (*SignedGroup, error) {
	files := make([][]byte, len(members))
	g, err := SignGroupStream(ctx, len(members), func(i int) (Member, error) { return members[i], nil }, opts,
		func(sm *SignedMember) error {
			files[sm.Index-opts.kept()] = sm.File
			return nil
		})
	if err != nil {
		return nil, err
	}
	for i := range g.Members {
		g.Members[i].File = files[i]
	}
	return g, nil
}

// SignGroupStream is SignGroup for n members that load(i) provides, one at
// a time: each member is loaded twice (to measure it, then to sign it), and
// handed to emit, from any goroutine, as soon as it is signed. Nothing of a
// member's files is kept after emit returns, so memory holds the table and
// one member per worker whatever the group's size. The SignedGroup it
// returns has no Files.
func SignGroupStream(ctx context.Context, n int, load func(i int) (Member, error), opts SignOptions, emit func(*SignedMember) error) (*SignedGroup, error) {
	return signStream(ctx, n, load, opts, false, emit)
}

// GroupSigningMaterial is the first step of signing a group with keys kept
// outside the process: it computes the table and every member's unsigned
// SIGSTRUCT, and hands each to emit (File is nil); css.SigningMaterial()
// is what the key must sign. The second step is SignGroupStream with
// SignOptions.Sign attaching those signatures; its output is
// byte-identical to signing in one step.
func GroupSigningMaterial(ctx context.Context, n int, load func(i int) (Member, error), opts SignOptions, emit func(*SignedMember) error) (*SignedGroup, error) {
	return signStream(ctx, n, load, opts, true, emit)
}

func signStream(ctx context.Context, n int, load func(i int) (Member, error), opts SignOptions, materialOnly bool, emit func(*SignedMember) error) (*SignedGroup, error) {
	if n == 0 {
		return nil, ErrEmptyGroup
	}
	if opts.Date.IsZero() {
		return nil, ErrMissingDate
	}
	if y := opts.Date.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("%w: year %d cannot be a SIGSTRUCT date", ErrMissingDate, y)
	}
	if err := opts.checkLineage(); err != nil {
		return nil, err
	}
	date := sgx.DateFromTime(opts.Date)
	out := &SignedGroup{Members: make([]SignedMember, n)}
	sizes := make([]uint64, n)
	names := make([]string, n)
	name := func(i int) string { return memberName(i, names[i]) }

	// 1. Measure every member up to its section: its table entry.
	progress := newProgress(opts.Progress, n)
	// A classic table too small for the group is found at the first
	// member's section, before anything is measured.
	var tooMany atomic.Pointer[error]
	err := forEach(ctx, n, opts.Workers, func(i int) error {
		if tooMany.Load() != nil {
			return errStageCanceled
		}
		m, err := load(i)
		if err != nil {
			return err
		}
		names[i] = m.Name
		if m.Key == nil && opts.Sign == nil && !materialOnly {
			return ErrMissingKey
		}
		img, err := sgxsdk.Prepare(m.ELF, m.Config, m.Options)
		if err != nil {
			return err
		}
		rva, size, ok := img.MageSection()
		if !ok {
			return ErrNoSection
		}
		if c := Capacity(int(min(size, MaxSectionSize))); !opts.Merkle && n > c {
			err := fmt.Errorf("%w: %d members, but a %d-byte .sgx_mage section holds at most %d in a classic table: sign with a Merkle table (SignOptions.Merkle, magectl group sign --table merkle), whose one page serves any number", ErrCapacity, n, size, c)
			tooMany.CompareAndSwap(nil, &err)
			return err
		}
		st, err := img.MeasurePrefixContext(ctx)
		if err != nil {
			return err
		}
		sizes[i] = size
		out.Members[i] = SignedMember{Index: i, Name: m.Name, Entry: Entry{State: st, Offset: rva}}
		progress("measure")
		return nil
	}, name)
	if p := tooMany.Load(); p != nil {
		return nil, *p
	}
	if err != nil {
		return nil, err
	}
	for i := 1; i < n; i++ {
		if sizes[i] != sizes[0] {
			return nil, fmt.Errorf("%w: %s has %d bytes, %s has %d", ErrSectionSize, name(0), sizes[0], name(i), sizes[i])
		}
	}
	var section []byte
	var mrs []sgx.Measurement
	if opts.Merkle {
		// Every member's MRENCLAVE is finished over the same one-page
		// section, whatever the group's size: O(N) for the tree and N
		// page-hashes.
		var err error
		if section, err = out.merkleTable(opts, int(sizes[0])); err != nil {
			return nil, err
		}
		h := measure.New().Batched()
		for _, sm := range out.Members {
			mr, err := finish(h, sm.Entry, section)
			if err != nil {
				return nil, err
			}
			mrs = append(mrs, mr)
		}
	} else {
		tab := &Table{Entries: make([]Entry, n)}
		for i := range out.Members {
			tab.Entries[i] = out.Members[i].Entry
		}
		var err error
		if section, err = tab.Marshal(int(sizes[0])); err != nil {
			return nil, err
		}
		// Every member's MRENCLAVE, finished from its entry over the table
		// as any member will derive it.
		if mrs, err = DeriveAllContext(ctx, section, opts.Workers); err != nil {
			return nil, err
		}
	}
	out.Section = section
	// Identical members would be indistinguishable to their peers: refuse
	// them before signing.
	seen := map[sgx.Measurement]int{}
	for i, mr := range mrs {
		if j, dup := seen[mr]; dup {
			return nil, fmt.Errorf("%w: %s and %s have the same MRENCLAVE %s", ErrDuplicate, name(j), name(i), mr)
		}
		seen[mr] = i
		out.Members[i].MRENCLAVE = mr
	}

	// 2. Load each member again, sign it over the table, hand it on.
	err = forEach(ctx, n, opts.Workers, func(i int) error {
		m, err := load(i)
		if err != nil {
			return err
		}
		img, err := sgxsdk.Prepare(m.ELF, m.Config, m.Options)
		if err != nil {
			return err
		}
		if err := img.SetMageSection(section); err != nil {
			return err
		}
		sm := out.Members[i]
		css := img.Sigstruct(sm.MRENCLAVE, date)
		sm.Sigstruct = css
		if !materialOnly {
			if opts.Sign != nil {
				if err := opts.Sign(i, css); err != nil {
					return err
				}
				if err := css.Verify(); err != nil {
					return err
				}
			} else if err := css.Sign(m.Key); err != nil {
				return err
			}
			if sm.File, err = img.SignedFile(css); err != nil {
				return err
			}
		}
		if err := emit(&sm); err != nil {
			return err
		}
		out.Members[i].Sigstruct = css
		progress("sign")
		return nil
	}, name)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// merkleTable builds the Merkle table of the measured members (after the
// kept ones of a successor), sets the group's proofs and lineage, and
// returns the section.
func (out *SignedGroup) merkleTable(opts SignOptions, size int) ([]byte, error) {
	if err := checkSectionSize(size); err != nil {
		return nil, err
	}
	kinds := make([]Kind, len(out.Members))
	entries := make([]Entry, len(out.Members))
	for i := range out.Members {
		kinds[i], entries[i] = KindSDK, out.Members[i].Entry
	}
	mg, err := newMerkleGroup(opts, VersionedTable{SDKSectionSize: uint32(size)}, kinds, entries)
	if err != nil {
		return nil, err
	}
	for i := range out.Members {
		out.Members[i].Index += mg.kept
	}
	section := make([]byte, size)
	copy(section, mg.table.Marshal())
	out.Proofs, out.Lineage, out.LineageProofs = mg.proofs[mg.kept:], mg.lineage, mg.lineageProofs
	return section, nil
}

// merkleGroup is the Merkle table of a group being signed: the table, every
// member's proof (kept members first), and for an updatable group its
// lineage and every member's lineage proof.
type merkleGroup struct {
	table         *VersionedTable
	kept          int
	proofs        []*MembershipProof
	lineage       *Lineage
	lineageProofs []*LineageProof
}

// newMerkleGroup builds the Merkle table of the members signed now (their
// kinds and entries), after the kept members of a successor
// (opts.Successor), with the group's constants from base.
func newMerkleGroup(opts SignOptions, base VersionedTable, kinds []Kind, entries []Entry) (*merkleGroup, error) {
	if opts.Successor != nil && opts.UpdateKey != nil {
		return nil, fmt.Errorf("%w: a successor commits to its Successor.NextKey, not SignOptions.UpdateKey", ErrLineage)
	}
	succ := opts.Successor
	var allKinds []Kind
	var allEntries []Entry
	if succ != nil {
		if succ.Lineage == nil {
			return nil, fmt.Errorf("%w: a successor needs its predecessor's lineage", ErrLineage)
		}
		hashes, err := succ.Lineage.verify()
		if err != nil {
			return nil, fmt.Errorf("the predecessor's lineage: %w", err)
		}
		prev := succ.Lineage.Head()
		// The members signed now must be built as the group's are: the
		// same SDK section size, the same Gramine runtime (whichever of
		// them they have). A lineage never gains a kind of member.
		if base.SDKSectionSize == 0 {
			base.SDKSectionSize = prev.SDKSectionSize
		}
		if base.MaxThreads == 0 {
			base.MaxThreads, base.EDMM, base.Layout, base.LibpalSHA256 = prev.MaxThreads, prev.EDMM, prev.Layout, prev.LibpalSHA256
		}
		if !sameConstants(prev, &base) {
			return nil, fmt.Errorf("%w: the members signed now differ from the group's in SDK section size (%d, the group's %d) or Gramine runtime (%d threads, EDMM %t, libpal %x; the group's %d, %t, %x)",
				ErrSectionSize, base.SDKSectionSize, prev.SDKSectionSize, base.MaxThreads, base.EDMM, base.LibpalSHA256[:4], prev.MaxThreads, prev.EDMM, prev.LibpalSHA256[:4])
		}
		for i, k := range succ.Keep {
			if k == nil || k.Proof == nil {
				return nil, fmt.Errorf("%w: kept member %d has no lineage proof", ErrLineage, i)
			}
			kh, err := k.Lineage.links()
			if err != nil {
				return nil, fmt.Errorf("kept member %d: %w", i, err)
			}
			if int(k.Measured) >= len(hashes) || int(k.Measured) >= len(kh) || kh[k.Measured] != hashes[k.Measured] {
				return nil, fmt.Errorf("%w: kept member %d measured a table (epoch %d) that is not in this lineage", ErrLineage, i, k.Measured)
			}
			if err := checkProof(prev, k.Proof); err != nil {
				return nil, fmt.Errorf("kept member %d is not a member of the predecessor (epoch %d): %w", i, prev.Epoch, err)
			}
			if mp := keptMeasuredProof(k); mp.Kind != k.Proof.Kind || mp.Entry != k.Proof.Entry {
				return nil, fmt.Errorf("%w: kept member %d's proofs in epochs %d and %d are for different entries", ErrLineage, i, k.Measured, prev.Epoch)
			} else if err := checkProof(succ.Lineage.Tables[k.Measured], mp); err != nil {
				return nil, fmt.Errorf("kept member %d is not a member of the table it measured (epoch %d): %w", i, k.Measured, err)
			}
			allKinds, allEntries = append(allKinds, k.Proof.Kind), append(allEntries, k.Proof.Entry)
		}
	}
	mg := &merkleGroup{kept: len(allEntries)}
	allKinds, allEntries = append(allKinds, kinds...), append(allEntries, entries...)
	seen := map[[32]byte]int{}
	for i := range allEntries {
		leaf := leafHash(allKinds[i], allEntries[i])
		if j, dup := seen[leaf]; dup {
			return nil, fmt.Errorf("%w: members %d and %d have the same entry", ErrDuplicate, j, i)
		}
		seen[leaf] = i
	}
	var err error
	switch {
	case succ != nil:
		next := succ.NextKey
		if len(next) == 0 && len(succ.Key) == ed25519.PrivateKeySize {
			next = succ.Key.Public().(ed25519.PublicKey)
		}
		if mg.table, mg.proofs, err = NewSuccessorTable(succ.Lineage.Head(), allKinds, allEntries, next); err != nil {
			return nil, err
		}
		if mg.lineage, err = succ.Lineage.Extend(mg.table, succ.Key); err != nil {
			return nil, err
		}
	case opts.UpdateKey != nil:
		if mg.table, mg.proofs, err = NewUpdatableTable(allKinds, allEntries, opts.UpdateKey); err != nil {
			return nil, err
		}
		mg.lineage = &Lineage{Tables: []*VersionedTable{mg.table}}
	default:
		if mg.table, mg.proofs, err = NewMerkleTable(allKinds, allEntries); err != nil {
			return nil, err
		}
	}
	t := mg.table
	if succ == nil {
		t.SDKSectionSize, t.MaxThreads, t.EDMM, t.Layout, t.LibpalSHA256 = base.SDKSectionSize, base.MaxThreads, base.EDMM, base.Layout, base.LibpalSHA256
	}
	if mg.lineage != nil {
		for i, p := range mg.proofs {
			lp := &LineageProof{Measured: t.Epoch, Lineage: *mg.lineage, Proof: p}
			if i < mg.kept {
				lp.Measured, lp.MeasuredProof = succ.Keep[i].Measured, keptMeasuredProof(succ.Keep[i])
			}
			mg.lineageProofs = append(mg.lineageProofs, lp)
		}
	}
	return mg, nil
}

// keptMeasuredProof returns a kept member's membership proof in the table
// it measured: its proof in the predecessor when it measured that table.
func keptMeasuredProof(k *LineageProof) *MembershipProof {
	if k.MeasuredProof != nil {
		return k.MeasuredProof
	}
	return k.Proof
}

func memberName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("member %d", i)
	}
	return fmt.Sprintf("member %d (%s)", i, name)
}

// forEach runs f for 0..n-1 on up to workers goroutines and returns the
// error of the lowest failing index, prefixed with its name.
func forEach(ctx context.Context, n, workers int, f func(int) error, name func(int) string) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if ctx.Err() != nil {
					errs[i] = errStageCanceled
					continue
				}
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", name(i), err)
		}
	}
	return nil
}

func newProgress(f func(string, int, int), total int) func(string) {
	if f == nil {
		return func(string) {}
	}
	var mu sync.Mutex
	done := map[string]int{}
	return func(stage string) {
		mu.Lock()
		defer mu.Unlock()
		done[stage]++
		f(stage, done[stage], total)
	}
}

// Manifest describes a signed group; "magectl group sign" writes it as
// group.json next to the signed members.
type Manifest struct {
	Name string `json:"name,omitempty"`
	// Format is the table's: "" (classic, SDK members only), "gramine"
	// (Gramine members only: bare entries), "versioned" (mixed) or
	// "merkle" (a Merkle root, members of any kind).
	Format      string `json:"format,omitempty"`
	SectionSize int    `json:"section_size"` // the SDK members' section (0 without)
	TableSHA256 string `json:"table_sha256"`
	// An updatable group's update key (hex), epoch, predecessor (the
	// SHA-256 of its table's payload, hex) and lineage file (the tables
	// and statements so far, relative to the manifest's directory).
	UpdateKey   string `json:"update_key,omitempty"`
	Epoch       uint32 `json:"epoch,omitempty"`
	Predecessor string `json:"predecessor_sha256,omitempty"`
	Lineage     string `json:"lineage,omitempty"`
	// Paths says what the members' relative file and proof paths are
	// relative to: "manifest", the manifest's own folder (what group sign
	// writes, so that a group's folder can move), or "" (manifests written
	// before that: the folder group sign ran in).
	Paths   string           `json:"paths,omitempty"`
	Members []ManifestMember `json:"members"`
}

// PathsRelativeToManifest is the Manifest.Paths value of manifests whose
// paths are relative to the manifest's folder.
const PathsRelativeToManifest = "manifest"

// RelativeTo rewrites the members' file and proof paths (usable from the
// working directory) relative to dir, the folder the manifest is written
// to, and marks the manifest so (Paths).
func (m *Manifest) RelativeTo(dir string) error {
	base, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rel := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		r, err := filepath.Rel(base, a)
		if err != nil {
			return a, nil // on another volume: absolute
		}
		return filepath.ToSlash(r), nil
	}
	for i := range m.Members {
		mm := &m.Members[i]
		if mm.File, err = rel(mm.File); err != nil {
			return err
		}
		if mm.Proof, err = rel(mm.Proof); err != nil {
			return err
		}
	}
	m.Paths = PathsRelativeToManifest
	return nil
}

// resolve makes the members' relative paths usable from the working
// directory, for a manifest read from dir.
func (m *Manifest) resolve(dir string) {
	if m.Paths != PathsRelativeToManifest {
		return // an older manifest: relative to where it was signed
	}
	join := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, filepath.FromSlash(p))
	}
	for i := range m.Members {
		m.Members[i].File, m.Members[i].Proof = join(m.Members[i].File), join(m.Members[i].Proof)
	}
}

// LoadManifest reads a group manifest from a file and resolves its
// members' paths (written relative to the manifest's folder) so that they
// open from the working directory. ParseManifest leaves them as written.
func LoadManifest(path string) (*Manifest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.resolve(filepath.Dir(path))
	return m, nil
}

// ManifestMember is one member of a Manifest: its index, name, output
// file, identity (the one JSON shape of sgx.Identity) and the offset of its
// .sgx_mage section.
type ManifestMember struct {
	Index         int          `json:"index"`
	Name          string       `json:"name"`
	Kind          string       `json:"kind,omitempty"` // "sdk", "gramine" or "snp" in a non-classic group
	File          string       `json:"file,omitempty"`
	Proof         string       `json:"proof,omitempty"` // its membership or lineage proof file (Merkle groups)
	Kept          bool         `json:"kept,omitempty"`  // kept from a predecessor: File was not signed now
	Identity      sgx.Identity `json:"identity"`
	SectionOffset string       `json:"section_offset"`
	// An SNP member: its launch digest and the command line it boots with
	// (which binds the table); it has no Identity.
	Launch  string `json:"launch,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// A TDX member: its MRTD and RTMR0 to RTMR3 (hex), RTMR3 after its
	// boot extended it with the table's event.
	MRTD string   `json:"mrtd,omitempty"`
	RTMR []string `json:"rtmr,omitempty"`
}

// Manifest summarises the signed group. files, if not nil, gives each
// member's output path.
func (g *SignedGroup) Manifest(name string, files []string) *Manifest {
	sum := sha256.Sum256(g.Section)
	m := &Manifest{Name: name, SectionSize: len(g.Section), TableSHA256: hex.EncodeToString(sum[:])}
	if g.Proofs != nil {
		m.Format = "merkle"
	}
	m.setLineage(g.Lineage)
	for i, sm := range g.Members {
		mm := ManifestMember{
			Index:         sm.Index,
			Name:          sm.Name,
			Identity:      sm.Sigstruct.SignedIdentity(),
			SectionOffset: fmt.Sprintf("%#x", sm.Entry.Offset),
		}
		if files != nil {
			mm.File = files[i]
		}
		m.Members = append(m.Members, mm)
	}
	return m
}

// setLineage records an updatable group's key, epoch and predecessor.
func (m *Manifest) setLineage(l *Lineage) {
	if l == nil {
		return
	}
	head := l.Head()
	m.UpdateKey, m.Epoch = hex.EncodeToString(head.UpdateKey[:]), head.Epoch
	if head.Epoch > 0 {
		m.Predecessor = hex.EncodeToString(head.Predecessor[:])
	}
}

// Manifest summarises a signed group of Gramine or mixed members; its
// table_sha256 is the payload's. files, if not nil, gives each member's
// output path.
func (g *SignedAnyGroup) Manifest(name string, files []string) *Manifest {
	sum := sha256.Sum256(g.Payload)
	m := &Manifest{Name: name, Format: "gramine", SectionSize: len(g.Section), TableSHA256: hex.EncodeToString(sum[:])}
	switch {
	case g.Proofs != nil:
		m.Format = "merkle"
	case IsVersioned(g.Payload):
		m.Format = "versioned"
	}
	m.setLineage(g.Lineage)
	for i, sm := range g.Members {
		mm := ManifestMember{Index: sm.Index, Name: sm.Name, Kind: sm.Kind.String()}
		if sm.Kind == KindSNP {
			mm.Launch, mm.Cmdline = hex.EncodeToString(sm.Launch[:]), sm.Cmdline
		} else if sm.Kind == KindTDX {
			mm.MRTD = hex.EncodeToString(sm.TD.MRTD[:])
			for _, r := range sm.TD.RTMR {
				mm.RTMR = append(mm.RTMR, hex.EncodeToString(r[:]))
			}
		} else {
			mm.Identity, mm.SectionOffset = sm.Sigstruct.SignedIdentity(), fmt.Sprintf("%#x", sm.Entry.Offset)
		}
		if files != nil {
			mm.File = files[i]
		}
		m.Members = append(m.Members, mm)
	}
	return m
}
