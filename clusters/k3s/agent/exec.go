package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// Exec runs argv in the agent container of the scenario's agent pod on
// node, stdin on its standard input (none when nil), through the API
// server's exec with cfg (the streams need the client configuration, not
// only a clientset). It returns the command's standard output and exit
// code, with an error for any code but 0; -1 is a command that never ran
// to an exit (no agent on the node, the stream broken).
func (c *Client) Exec(ctx context.Context, cfg *rest.Config, node string, stdin []byte, argv ...string) ([]byte, int, error) {
	ex, pod, err := c.executor(ctx, cfg, node, stdin != nil, argv)
	if err != nil {
		return nil, -1, err
	}
	var out, errOut bytes.Buffer
	so := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
	if stdin != nil {
		so.Stdin = bytes.NewReader(stdin)
	}
	err = ex.StreamWithContext(ctx, so)
	if err == nil {
		return out.Bytes(), 0, nil
	}
	code := -1
	var ee utilexec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitStatus()
	}
	return out.Bytes(), code, fmt.Errorf("%s on node %s (agent %s): %w: %s", strings.Join(argv, " "), node, pod, err, strings.TrimSpace(errOut.String()))
}

// executor prepares the exec of argv in the agent container of the
// scenario's agent pod on node, with standard output and error, and
// standard input when withStdin; it names the pod.
func (c *Client) executor(ctx context.Context, cfg *rest.Config, node string, withStdin bool, argv []string) (remotecommand.Executor, string, error) {
	pod, err := c.PodOn(ctx, node)
	if err != nil {
		return nil, "", err
	}
	if cfg == nil {
		return nil, "", errors.New("agent: no client configuration to exec in the agent with")
	}
	req := c.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(Namespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: "agent", Command: argv, Stdin: withStdin, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, "", err
	}
	return ex, pod, nil
}
