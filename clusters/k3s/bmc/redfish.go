package bmc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// redfishTimeout backstops a request whose ctx has no deadline: a BMC that
// accepts a connection and never answers must not hang a fault.
const redfishTimeout = 30 * time.Second

// redfishController resets one ComputerSystem. It connects for each call,
// with HTTP basic auth: no Redfish session is left open on the BMC when a
// run is killed, and nothing expires between a power-off and the power-on
// minutes later.
type redfishController struct {
	log    *slog.Logger
	b      BMC
	pw     Secret
	http   *http.Client
	system string // the system's @odata.id
}

func newRedfish(ctx context.Context, log *slog.Logger, b BMC, pw Secret) (*redfishController, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The operator's choice for a BMC with a self-signed certificate.
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: b.InsecureSkipVerify} //nolint:gosec
	r := &redfishController{log: log, b: b, pw: pw, http: &http.Client{Transport: tr, Timeout: redfishTimeout}}
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	systems, err := c.Service.Systems()
	if err != nil {
		return nil, r.fail("listing systems", err)
	}
	sys, err := pickSystem(b, systems)
	if err != nil {
		return nil, err
	}
	r.system = sys.ODataID
	log.Debug("Redfish system found", "system", sys.ODataID, "power", string(sys.PowerState))
	return r, nil
}

func (r *redfishController) connect(ctx context.Context) (*gofish.APIClient, error) {
	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:          strings.TrimSuffix(r.b.Address, "/"),
		Username:          r.b.Username,
		Password:          r.pw.reveal(),
		BasicAuth:         true,
		HTTPClient:        r.http,
		NoModifyTransport: true,
	})
	if err != nil {
		return nil, r.fail("connecting", err)
	}
	return c, nil
}

// pickSystem finds the inventory's system among the BMC's: by @odata.id,
// by Id, or the only one when none is named.
func pickSystem(b BMC, systems []*schemas.ComputerSystem) (*schemas.ComputerSystem, error) {
	var ids []string
	for _, s := range systems {
		if b.System != "" && (s.ID == b.System || strings.TrimSuffix(s.ODataID, "/") == strings.TrimSuffix(b.System, "/")) {
			return s, nil
		}
		ids = append(ids, s.ODataID)
	}
	switch {
	case len(systems) == 0:
		return nil, fmt.Errorf("node %s: the Redfish service at %s lists no systems", b.Node, b.Address)
	case b.System != "":
		return nil, fmt.Errorf("node %s: the Redfish service at %s has no system %q; it has: %s", b.Node, b.Address, b.System, strings.Join(ids, ", "))
	case len(systems) > 1:
		return nil, fmt.Errorf("node %s: the Redfish service at %s has %d systems; name one with system (an Id or @odata.id): %s", b.Node, b.Address, len(systems), strings.Join(ids, ", "))
	}
	return systems[0], nil
}

func (r *redfishController) get(ctx context.Context) (*schemas.ComputerSystem, error) {
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	sys, err := schemas.GetComputerSystem(c, r.system)
	if err != nil {
		return nil, r.fail("reading system "+r.system, err)
	}
	return sys, nil
}

func (r *redfishController) PowerState(ctx context.Context) (State, error) {
	sys, err := r.get(ctx)
	if err != nil {
		return Unknown, err
	}
	return redfishState(sys.PowerState), nil
}

func redfishState(p schemas.PowerState) State {
	switch p {
	case schemas.OnPowerState:
		return On
	case schemas.OffPowerState:
		return Off
	}
	return Unknown
}

func (r *redfishController) PowerOff(ctx context.Context) error {
	return r.reset(ctx, schemas.ForceOffResetType, Off)
}

func (r *redfishController) PowerOn(ctx context.Context) error {
	return r.reset(ctx, schemas.OnResetType, On)
}

// reset asks for rt unless the system is already in the state it leads
// to: some BMCs answer a ForceOff of a system that is off with an error
// (409 on iDRAC), and a repeated request would restart a pending one.
func (r *redfishController) reset(ctx context.Context, rt schemas.ResetType, to State) error {
	sys, err := r.get(ctx)
	if err != nil {
		return err
	}
	if redfishState(sys.PowerState) == to {
		r.log.Info("BMC power already in state; nothing to do", "state", string(to))
		return nil
	}
	r.log.Info("BMC reset", "system", r.system, "resetType", string(rt), "from", string(sys.PowerState))
	if _, err := sys.Reset(rt); err != nil {
		return r.fail(fmt.Sprintf("reset %s of %s", rt, r.system), err)
	}
	return nil
}

// fail words a library error for the operator: refused credentials say
// so, and nothing of the password survives.
func (r *redfishController) fail(doing string, err error) error {
	if code := refused(err); code != 0 {
		return fmt.Errorf("node %s: the Redfish service at %s refused user %q (HTTP %d) while %s: check username and the password in %s",
			r.b.Node, r.b.Address, r.b.Username, code, doing, r.b.passwordSource())
	}
	return fmt.Errorf("node %s: Redfish %s at %s: %w", r.b.Node, doing, r.b.Address, r.pw.scrub(err))
}

// refused is the HTTP status (401 or 403) of a refusal of the credentials
// in err, 0 for none. Listing a collection reports its failures in a
// CollectionError.
func refused(err error) int {
	var re *schemas.Error
	if errors.As(err, &re) && (re.HTTPReturnedStatusCode == http.StatusUnauthorized || re.HTTPReturnedStatusCode == http.StatusForbidden) {
		return re.HTTPReturnedStatusCode
	}
	var ce *schemas.CollectionError
	if errors.As(err, &ce) {
		for _, f := range ce.Failures {
			if code := refused(f); code != 0 {
				return code
			}
		}
	}
	return 0
}
