package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// Run runs the docker CLI (the one kind also runs) and returns its
// standard output; an error carries its standard error.
func Run(ctx context.Context, args ...string) ([]byte, error) {
	return RunEnv(ctx, nil, args...)
}

// RunEnv is Run with extra environment variables.
func RunEnv(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	if env != nil {
		cmd.Env = append(cmd.Environ(), env...)
	}
	return output(cmd, args)
}

// RunInput is Run with stdin as the command's standard input (docker
// exec -i).
func RunInput(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return RunReader(ctx, bytes.NewReader(stdin), args...)
}

// RunReader is Run with r as the command's standard input (an image
// archive streamed into docker exec -i).
func RunReader(ctx context.Context, r io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = r
	return output(cmd, args)
}

func output(cmd *exec.Cmd, args []string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, install.Tail(stderr.Bytes()))
	}
	return out, nil
}

// ImageExists says whether the daemon has an image by that reference.
func ImageExists(ctx context.Context, ref string) bool {
	_, err := Run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}
