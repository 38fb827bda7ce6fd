package crash

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

const (
	// childEnv marks the supervised child; the child removes it, so that a
	// chaosloop it starts in turn is supervised again.
	childEnv = "CHAOSLOOP_SUPERVISED"
	// The child's file descriptors for its crash output (to the parent)
	// and for the signals the parent forwards (from it).
	crashFD = 3
	notesFD = 4
	// maxCrashOutput bounds what the parent keeps of a crash's stack
	// traces (every goroutine's).
	maxCrashOutput = 16 << 20
)

// Supervise runs chaosloop with args again, as a child process of this
// one, and returns the status to exit with: the child's, except that a
// crash — the Go runtime's exit status 2 after a panic it could not
// recover or a fatal error, or death by a signal such as SIGKILL from the
// kernel's out-of-memory killer — is 1, with a crash report (see Report).
// The child keeps this process's standard input, output and error (a
// terminal stays a terminal); the Go runtime writes its crash output to a
// pipe as well (debug.SetCrashOutput, see Attach). ok is false when this
// process is to run the command itself: it is the child, the command is
// one chaosloop starts for itself, or no child could be started.
func Supervise(args []string, stderr io.Writer, version func() string) (code int, ok bool) {
	if os.Getenv(childEnv) != "" || unsupervised(args) {
		return 0, false
	}
	c, err := startChild(args)
	if err != nil {
		return 0, false // only a panic a command recovers is reported then
	}
	e := c.wait()
	switch {
	case e.crash != "":
		Report{Summary: e.crash, Version: version(), Args: args, Details: e.details}.Write(stderr)
	case e.signal != 0:
		raise(e.signal)
	}
	return e.code, true
}

// unsupervised are the commands chaosloop runs for itself, whose status
// only chaosloop reads: the workload's handler processes (which a fault
// may kill or freeze, one process each) and shell completion (run on
// every Tab, printing nothing but candidates).
func unsupervised(args []string) bool {
	return len(args) > 0 && (args[0] == "internal" || args[0] == "__complete" || args[0] == "__completeNoDesc")
}

// child is a running supervised chaosloop.
type child struct {
	cmd    *exec.Cmd
	notes  *os.File       // the write end of the forwarded signals
	crashR *os.File       // the read end of the crash output
	output chan []byte    // the crash output, once the child closed it
	sigs   chan os.Signal // what this process receives
}

func startChild(args []string) (*child, error) {
	crashR, crashW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	notesR, notesW, err := os.Pipe()
	if err != nil {
		crashR.Close()
		crashW.Close()
		return nil, err
	}
	c := &child{notes: notesW, crashR: crashR, output: make(chan []byte, 1), sigs: make(chan os.Signal, 8)}
	c.cmd = &exec.Cmd{
		Path:       "/proc/self/exe", // this binary, even if replaced on disk since
		Args:       append([]string{os.Args[0]}, args...),
		Env:        append(os.Environ(), childEnv+"=1"),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{crashW, notesR}, // crashFD, notesFD
		// A child outliving its parent's SIGKILL would run on unseen.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	// Caught before the child exists, so that none ends this process
	// while it still runs.
	signal.Notify(c.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	// Linux sends Pdeathsig when the thread that started the child ends,
	// not the process: this goroutine keeps its thread until wait.
	runtime.LockOSThread()
	err = c.cmd.Start()
	crashW.Close()
	notesR.Close()
	if err != nil {
		runtime.UnlockOSThread()
		signal.Stop(c.sigs)
		crashR.Close()
		notesW.Close()
		return nil, err
	}
	go c.readCrashOutput()
	go c.forwardSignals()
	return c, nil
}

// forwardSignals passes each SIGINT and SIGTERM this process receives to
// the child as a byte on a pipe, not as a signal: a Ctrl-C on a terminal
// (or a `timeout`) signals both processes, and the child counts a signal
// once however it came (cli.NotifyContext), so that a single Ctrl-C never
// looks like the second that ends chaosloop without its cleanup. SIGQUIT
// (Ctrl-\) is left to the child, which dumps its goroutines.
func (c *child) forwardSignals() {
	for s := range c.sigs {
		if n, ok := s.(syscall.Signal); ok && n != syscall.SIGQUIT {
			_, _ = c.notes.Write([]byte{byte(n)})
		}
	}
}

func (c *child) readCrashOutput() {
	var b bytes.Buffer
	_, _ = io.Copy(&b, io.LimitReader(c.crashR, maxCrashOutput))
	_, _ = io.Copy(io.Discard, c.crashR) // the child must never block on a full pipe
	c.output <- b.Bytes()
}

// wait waits for the child and judges how it ended.
func (c *child) wait() ending {
	err := c.cmd.Wait() // an exit status other than 0 is an error too
	runtime.UnlockOSThread()
	st := c.cmd.ProcessState
	if st == nil {
		return ending{code: 1, crash: "waiting for chaosloop's child process failed: " + err.Error()}
	}
	// The runtime wrote its crash output before the child ended; only a
	// process that inherited the pipe (none should: the child's end is
	// close-on-exec) could keep it open.
	_ = c.crashR.SetReadDeadline(time.Now().Add(time.Second))
	out := <-c.output
	var peakKB int64
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		peakKB = ru.Maxrss
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	return judge(ws, out, peakKB)
}

// raise ends this process by sig, as the child ended, so that a shell
// sees what it would have seen without a supervisor (bash ends a script
// whose command died of SIGINT). Go ignores a SIGPIPE it did not cause:
// the caller's exit status, 128+13, stands in for it.
func raise(sig syscall.Signal) {
	signal.Reset(sig)
	_ = syscall.Kill(os.Getpid(), sig)
}
