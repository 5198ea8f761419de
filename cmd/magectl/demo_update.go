package main

// magectl demo --update: a rolling update of an updatable Merkle group.
// alice, bob and carol are signed as epoch 0 with an update key; the
// successor (epoch 1) keeps alice unchanged, replaces carol with a new
// version and drops bob. The running alice is handed its new proof (no
// re-signing, no restart); the old alice and the new carol attest each
// other both ways; bob and the old carol are refused.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"time"

	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
)

func runUpdateDemo(ctx context.Context, e *env, work, platformDir string, jsonOut bool, start time.Time) error {
	say := func(format string, a ...any) {
		if !jsonOut {
			fmt.Fprintf(e.stdout, format, a...)
		}
	}
	inputs, err := demoInputs()
	if err != nil {
		return err
	}
	// carol's new version: the same code with another configuration.
	carol2, err := demoInput{"carol", "g1_m2.so", "cG1_group_a.config.xml", "g1_k2.pem"}.member()
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	date := time.Now().UTC()
	g0, err := mage.SignGroup(ctx, inputs, mage.SignOptions{Date: date, Merkle: true, UpdateKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		return err
	}
	g1, err := mage.SignGroup(ctx, []mage.Member{carol2}, mage.SignOptions{Date: date, Merkle: true,
		Successor: &mage.Successor{Lineage: g0.Lineage, Key: key, Keep: g0.LineageProofs[:1]}})
	if err != nil {
		return err
	}
	type member struct{ file, proof string }
	write := func(name string, file []byte, proof *mage.LineageProof) (member, error) {
		m := member{file: filepath.Join(work, name+".signed.so"), proof: filepath.Join(work, name+".proof")}
		if file != nil {
			if err := atomicfile.WriteFile(m.file, file, 0o644); err != nil {
				return m, err
			}
		}
		return m, atomicfile.WriteFile(m.proof, proof.Marshal(), 0o644)
	}
	files := map[string]member{}
	for i, sm := range g0.Members {
		if files[sm.Name+"@0"], err = write(sm.Name+"-v1", sm.File, g0.LineageProofs[i]); err != nil {
			return err
		}
	}
	if files["carol@1"], err = write("carol-v2", g1.Members[0].File, g1.LineageProofs[1]); err != nil {
		return err
	}
	// alice is kept: her signed file stays, her host gets a new proof.
	aliceNew := filepath.Join(work, "alice-v1.epoch1.proof")
	if err := atomicfile.WriteFile(aliceNew, g1.LineageProofs[0].Marshal(), 0o644); err != nil {
		return err
	}
	say("MAGE rolling-update demo (update key %x...)\n", []byte(key.Public().(ed25519.PublicKey))[:8])
	h0 := g0.Lineage.Head().Hash()
	say("  epoch 0: alice, bob, carol (Merkle table %x..., one page each)\n", h0[:8])
	say("  epoch 1: alice kept unchanged, carol replaced by carol-v2, bob dropped; the update key signed the successor statement\n")

	ps, err := newDemoProcs(ctx, e, platformDir, "")
	if err != nil {
		return err
	}
	defer ps.close()
	res := &demoResult{OK: true, Platform: platformDir}
	problem := func(format string, a ...any) {
		res.OK = false
		res.Problems = append(res.Problems, fmt.Sprintf(format, a...))
	}
	start1 := func(label, name string, m member) (*demoChild, error) {
		c, err := ps.start(label, m.file, m.proof, false)
		if err != nil {
			return nil, err
		}
		res.Members = append(res.Members, demoProcess{Index: c.ready.Index, Name: label, MRENCLAVE: c.ready.MRENCLAVE, MRSIGNER: c.ready.MRSIGNER, PID: c.ready.PID, Addr: c.ready.Addr})
		say("  %-8s member %d  MRENCLAVE %s  pid %d\n", label, c.ready.Index, c.ready.MRENCLAVE, c.ready.PID)
		return c, nil
	}
	shake := func(c, s *demoChild, kind string, want bool) error {
		d, sv, err := ps.dial(c, s, kind)
		if err != nil {
			return err
		}
		h := demoHandshake{Client: c.name, Server: s.name, Evidence: kind, ClientVerified: d.OK, ServerVerified: sv.Event == "accepted", Reply: d.Reply, Error: d.Error + sv.Error}
		ok := h.ClientVerified && h.ServerVerified
		if want {
			if !ok {
				problem("%s -> %s (%s): expected mutual acceptance: %s", c.name, s.name, kind, h.Error)
			}
			res.Handshakes = append(res.Handshakes, h)
			say("  %-8s -> %-8s %-6s accepted both ways (epoch %d)\n", c.name, s.name, kind, d.Epoch)
			return nil
		}
		ri := demoImpostor{Name: c.name, What: "not a member of the newest epoch", MRENCLAVE: c.ready.MRENCLAVE, Target: s.name, Refused: !ok && sv.Event == "refused", Reason: sv.Error}
		if !ri.Refused {
			problem("%s was not refused by %s", c.name, s.name)
		}
		res.Impostors = append(res.Impostors, ri)
		say("  %-8s -> %-8s %-6s refused: %s\n", c.name, s.name, kind, ri.Reason)
		return nil
	}

	say("\nepoch 0, every member on simulated platform %s:\n", platformDir)
	alice, err := start1("alice", "alice", files["alice@0"])
	if err != nil {
		return err
	}
	bob, err := start1("bob", "bob", files["bob@0"])
	if err != nil {
		return err
	}
	carol, err := start1("carol", "carol", files["carol@0"])
	if err != nil {
		return err
	}
	v1 := []*demoChild{alice, bob, carol}
	for _, c := range v1 {
		for _, s := range v1 {
			if c != s {
				if err := shake(c, s, "remote", true); err != nil {
					return err
				}
			}
		}
	}

	say("\nthe update: carol-v2 starts; the running alice is handed her epoch-1 proof:\n")
	carolV2, err := start1("carol-v2", "carol", files["carol@1"])
	if err != nil {
		return err
	}
	if err := ps.setLineage(alice, aliceNew); err != nil {
		problem("handing alice her new proof: %v", err)
	}
	for _, kind := range []string{"remote", "local"} {
		if err := shake(alice, carolV2, kind, true); err != nil {
			return err
		}
		if err := shake(carolV2, alice, kind, true); err != nil {
			return err
		}
	}
	say("\nmembers the successor dropped or replaced, refused by every member that knows it:\n")
	for _, c := range []*demoChild{bob, carol} {
		for _, s := range []*demoChild{alice, carolV2} {
			if err := shake(c, s, "remote", false); err != nil {
				return err
			}
		}
	}
	return finishDemo(e, res, jsonOut, start)
}
