package main

// magectl tdx: Intel TDX confidential VMs (so far: the MRTD of a TDVF
// image).

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/tdx"
)

func runTDX(e *env, args []string) error {
	return dispatch(e, args, "tdx", `Usage: magectl tdx <measure> [flags]

  measure FIRMWARE    the MRTD of a TD launched with this TDVF (OVMF) image

Run "magectl tdx <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runTDXMeasure})
}

type tdxMeasure struct {
	File     string        `json:"file"`
	MRTD     string        `json:"mrtd"`
	Sections []tdx.Section `json:"sections"`
}

func runTDXMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "tdx measure", "tdx measure FIRMWARE [--json]")
	jsonOut := fs.Bool("json", false, "print JSON (the MRTD and the TDX metadata sections)")
	arg, err := parseOneArg(fs, args, "firmware image")
	if err != nil {
		return err
	}
	fw, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	mrtd, err := tdx.MRTD(fw)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	if *jsonOut {
		s, _ := tdx.ParseMetadata(fw) // parsed by MRTD
		return writeJSON(e.stdout, tdxMeasure{File: arg, MRTD: hex.EncodeToString(mrtd[:]), Sections: s})
	}
	fmt.Fprintln(e.stdout, hex.EncodeToString(mrtd[:]))
	return nil
}

// tdxEntry is a TDX member's entry from its group-file description.
func tdxEntry(v *mage.TDXMemberFile) (*mage.TDXEntry, error) {
	e := &mage.TDXEntry{}
	if v.MRTD != "" {
		hex.Decode(e.MRTD[:], []byte(v.MRTD))
	} else {
		fw, err := readBounded(v.Firmware, maxFirmware)
		if err != nil {
			return nil, err
		}
		if e.MRTD, err = tdx.MRTD(fw); err != nil {
			return nil, fmt.Errorf("%s: %w", v.Firmware, err)
		}
	}
	if v.RTMR != nil {
		for i, h := range v.RTMR {
			hex.Decode(e.RTMR[i][:], []byte(h))
		}
		return e, nil
	}
	raw, err := readBounded(v.EventLog, 16<<20)
	if err != nil {
		return nil, err
	}
	events, err := tdx.ParseEventLog(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.EventLog, err)
	}
	rtmr, err := tdx.ReplayRTMRs(events)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.EventLog, err)
	}
	if rtmr[3] != ([48]byte{}) {
		return nil, fmt.Errorf("%s: the reference boot extended RTMR3 already; the TD's boot must extend it with the table's event first", v.EventLog)
	}
	copy(e.RTMR[:], rtmr[:3])
	return e, nil
}
