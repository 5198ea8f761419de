package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelpShown is returned when a command printed its help on request.
var errHelpShown = errors.New("help shown")

// newFlagSet makes a flag set for a subcommand that reports errors instead of
// exiting, and prints usage to w. Both -flag and --flag spellings work (the
// standard flag package accepts both).
func newFlagSet(w io.Writer, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: magectl %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping -h/--help to errHelpShown and other errors
// to usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return usagef("%v", err)
	}
	return nil
}
