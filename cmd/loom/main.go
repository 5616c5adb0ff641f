// Command loom runs large language models: generation from the command
// line, an OpenAI-compatible server, benchmarks, and tools to inspect model
// files and tokenizers. Run "loom help" for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. Each lives in its own file and registers
// itself from init, so subcommands can be added without touching this file.
type command struct {
	name    string
	summary string
	// run parses args (the arguments after the subcommand name) and does
	// the work, writing results to stdout and diagnostics to stderr.
	run func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("loom: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks errors caused by bad command-line arguments (exit status 2).
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "loom: run large language models on GPUs and CPUs")
	fmt.Fprintln(w, "\nUsage: loom <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		if !strings.HasPrefix(n, "__") { // hidden plumbing (the CUDA probe)
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'loom <command> -h' for a command's flags.")
}

func main() {
	// A command that may use a GPU is handed to loom-cuda when one is
	// present (see cuda_dispatch.go); this returns at once otherwise.
	if code, handled := cudaDispatch(os.Args[1:], os.Stderr); handled {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultDevice is the --device default: $LOOM_DEVICE, else "auto".
func defaultDevice() string {
	if d := strings.TrimSpace(os.Getenv(envDevice)); d != "" {
		return d
	}
	return "auto"
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "loom: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "loom") {
			msg = "loom " + c.name + ": " + msg
		}
		fmt.Fprintln(stderr, msg)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// newFlags returns a flag set for a subcommand that reports errors instead
// of exiting, writing its usage to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("loom "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs, wrapping errors as usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
