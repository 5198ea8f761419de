// Command magectl signs, measures and attests Intel SGX enclaves and MAGE
// groups of enclaves. Run "magectl help" for the list of commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
)

// Exit codes. They are part of the CLI contract and documented in the README.
const (
	exitOK       = 0 // success
	exitFailed   = 1 // a check failed: verification, mismatch, refusal
	exitUsage    = 2 // bad command line
	exitBadInput = 3 // unreadable or malformed input, I/O error
	// exitInterrupted is the shell's code for a command ended by SIGINT
	// (128 + 2); magectl uses it for SIGTERM too.
	exitInterrupted = 130
)

// env is what a command sees of the outside world, so commands are testable
// without touching the process state.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

// commands is the table of subcommands. Each lives in its own file.
func commands() []command {
	cs := []command{
		{"version", "print the magectl version", runVersion},
	}
	cs = append(cs, extraCommands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

// extraCommands is filled by the command files' registration list in
// register.go, kept apart so adding a command touches one line.
var extraCommands = registered()

const version = "0.1.0-dev"

func runVersion(e *env, args []string) error {
	fs := newFlagSet(e, "version", "version [--json]")
	jsonOut := fs.Bool("json", false, "print {\"version\", \"go\", \"os\", \"arch\"} as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("version takes no arguments")
	}
	if *jsonOut {
		return json.NewEncoder(e.stdout).Encode(struct {
			Version string `json:"version"`
			Go      string `json:"go"`
			OS      string `json:"os"`
			Arch    string `json:"arch"`
		}{version, runtime.Version(), runtime.GOOS, runtime.GOARCH})
	}
	fmt.Fprintln(e.stdout, "magectl", version)
	return nil
}

// usageError marks an error as a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// failure marks an error as a failed check (exit code 1), as opposed to bad
// input (exit code 3).
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

func failed(err error) error { return failure{err} }

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	var f failure
	if errors.As(err, &f) {
		return exitFailed
	}
	return exitBadInput
}

func run(e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return run(e, []string{args[1], "--help"})
		}
		if len(args) == 0 {
			printUsage(e.stderr) // a usage error: help beside it
			return exitUsage
		}
		printUsage(e.stdout)
		return exitOK
	}
	name := args[0]
	for _, c := range commands() {
		if c.name == name {
			err := c.run(e, args[1:])
			if err != nil && !errors.Is(err, errHelpShown) {
				var sub subcommandError
				if errors.As(err, &sub) {
					name += " " + sub.sub
				}
				if e.ctx.Err() != nil {
					// Ctrl-C or SIGTERM: whatever the work was doing, it
					// stopped there (outputs are committed whole or not
					// at all).
					fmt.Fprintf(e.stderr, "magectl %s: interrupted\n", name)
					return exitInterrupted
				}
				fmt.Fprintf(e.stderr, "magectl %s: %v\n", name, err)
				return exitCode(err)
			}
			return exitOK
		}
	}
	fmt.Fprintf(e.stderr, "magectl: unknown command %q (run \"magectl help\")\n", name)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "magectl: measure, sign and attest Intel SGX enclaves and MAGE groups")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: magectl <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		if !strings.HasPrefix(c.name, "_") {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run \"magectl <command> --help\" for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 bad input or I/O error, 130 interrupted.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := run(e, os.Args[1:])
	stop()
	os.Exit(code)
}
