package mage

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/magesgx/mage/sgx"
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

// SignOptions tune SignGroup.
type SignOptions struct {
	// Date is the SIGSTRUCT date (its day, in UTC); required, and within
	// years 1 to 9999.
	Date    time.Time
	Workers int // parallel members; <= 0 means GOMAXPROCS
	// Progress, if not nil, is called after each member finishes a stage
	// ("measure" or "sign"), from any goroutine, one call at a time.
	Progress func(stage string, done, total int)
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
func SignGroup(ctx context.Context, members []Member, opts SignOptions) (*SignedGroup, error) {
	if len(members) == 0 {
		return nil, ErrEmptyGroup
	}
	if opts.Date.IsZero() {
		return nil, ErrMissingDate
	}
	if y := opts.Date.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("%w: year %d cannot be a SIGSTRUCT date", ErrMissingDate, y)
	}
	date := sgx.DateFromTime(opts.Date)
	for i, m := range members {
		if m.Key == nil {
			return nil, fmt.Errorf("member %d (%s): %w", i, m.Name, ErrMissingKey)
		}
	}
	n := len(members)
	images := make([]*sgxsdk.Image, n)
	out := &SignedGroup{Members: make([]SignedMember, n)}
	sizes := make([]uint64, n)

	progress := newProgress(opts.Progress, n)
	err := forEach(ctx, n, opts.Workers, func(i int) error {
		m := members[i]
		img, err := sgxsdk.Prepare(m.ELF, m.Config, m.Options)
		if err != nil {
			return err
		}
		rva, size, ok := img.MageSection()
		if !ok {
			return ErrNoSection
		}
		st, err := img.MeasurePrefixContext(ctx)
		if err != nil {
			return err
		}
		images[i] = img
		sizes[i] = size
		out.Members[i] = SignedMember{Index: i, Name: m.Name, Entry: Entry{State: st, Offset: rva}}
		progress("measure")
		return nil
	}, func(i int) string { return memberName(i, members[i].Name) })
	if err != nil {
		return nil, err
	}
	for i := 1; i < n; i++ {
		if sizes[i] != sizes[0] {
			return nil, fmt.Errorf("%w: %s has %d bytes, %s has %d", ErrSectionSize,
				memberName(0, members[0].Name), sizes[0], memberName(i, members[i].Name), sizes[i])
		}
	}
	tab := &Table{Entries: make([]Entry, n)}
	for i := range out.Members {
		tab.Entries[i] = out.Members[i].Entry
	}
	section, err := tab.Marshal(int(sizes[0]))
	if err != nil {
		return nil, err
	}
	out.Section = section

	// Every member's MRENCLAVE, finished from its entry over the table as
	// any member will derive it; identical members would be
	// indistinguishable to their peers, so refuse them before signing.
	mrs, err := DeriveAllContext(ctx, section, opts.Workers)
	if err != nil {
		return nil, err
	}
	seen := map[sgx.Measurement]int{}
	for i, mr := range mrs {
		if j, dup := seen[mr]; dup {
			return nil, fmt.Errorf("%w: %s and %s have the same MRENCLAVE %s", ErrDuplicate,
				memberName(j, members[j].Name), memberName(i, members[i].Name), mr)
		}
		seen[mr] = i
		out.Members[i].MRENCLAVE = mr
	}

	err = forEach(ctx, n, opts.Workers, func(i int) error {
		sm := &out.Members[i]
		mr := sm.MRENCLAVE
		img := images[i]
		if err := img.SetMageSection(section); err != nil {
			return err
		}
		css := img.Sigstruct(mr, date)
		if err := css.Sign(members[i].Key); err != nil {
			return err
		}
		file, err := img.SignedFile(css)
		if err != nil {
			return err
		}
		sm.Sigstruct, sm.File = css, file
		images[i] = nil // let the image go as soon as it is written
		progress("sign")
		return nil
	}, func(i int) string { return memberName(i, members[i].Name) })
	if err != nil {
		return nil, err
	}
	return out, nil
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
	Name        string           `json:"name,omitempty"`
	SectionSize int              `json:"section_size"`
	TableSHA256 string           `json:"table_sha256"`
	Members     []ManifestMember `json:"members"`
}

// ManifestMember is one member of a Manifest: its index, name, output
// file, identity (the one JSON shape of sgx.Identity) and the offset of its
// .sgx_mage section.
type ManifestMember struct {
	Index         int          `json:"index"`
	Name          string       `json:"name"`
	File          string       `json:"file,omitempty"`
	Identity      sgx.Identity `json:"identity"`
	SectionOffset string       `json:"section_offset"`
}

// Manifest summarises the signed group. files, if not nil, gives each
// member's output path.
func (g *SignedGroup) Manifest(name string, files []string) *Manifest {
	sum := sha256.Sum256(g.Section)
	m := &Manifest{Name: name, SectionSize: len(g.Section), TableSHA256: hex.EncodeToString(sum[:])}
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
