package bmc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// ipmiCloseWait bounds the Close Session of a connection that failed:
// it only frees the socket, and a BMC that refused the session may never
// answer it.
const ipmiCloseWait = 500 * time.Millisecond

// ipmiSessionCloseWait bounds the Close Session of a session that worked.
const ipmiSessionCloseWait = 5 * time.Second

// ipmiController runs chassis control on one BMC, opening a session for
// each call: BMCs have a handful of session slots and drop idle sessions
// after about a minute, shorter than the gap between a fault's power-off
// and power-on.
type ipmiController struct {
	log  *slog.Logger
	b    BMC
	pw   Secret
	host string
	port int
	// suite is the lanplus cipher suite found to work when the controller
	// was made; later sessions use it alone.
	suite []types.CipherSuiteID
}

// suiteQueryWait bounds the cipher suite query. BMCs answer it at once;
// ipmi_sim never does, and go-ipmi's own negotiation would then spend 5 s
// (1 s and 4 retries) of every session on it.
const suiteQueryWait = 1500 * time.Millisecond

func newIPMI(ctx context.Context, log *slog.Logger, b BMC, pw Secret) (*ipmiController, error) {
	host, port, err := b.HostPort()
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", b.Node, err)
	}
	c := &ipmiController{log: log, b: b, pw: pw, host: host, port: port}
	// A session now: wrong credentials or address fail here, when the
	// controller is made, not at the first fault.
	if b.IPMIInterface() == Lan {
		_, err := c.PowerState(ctx)
		return c, err
	}
	for _, s := range c.suites(ctx) {
		c.suite = []types.CipherSuiteID{s}
		if _, err = c.PowerState(ctx); err == nil {
			log.Debug("IPMI cipher suite chosen", "suite", int(s))
			return c, nil
		}
		// The step before any suite is used failed: no BMC answers there,
		// and each further suite would wait 5 s for nothing.
		if strings.Contains(err.Error(), "Get Channel Authentication Capabilities") {
			break
		}
	}
	return nil, err
}

// suites are the cipher suites to try, best first: those the BMC lists,
// else go-ipmi's preference (17, then 3 which the spec requires).
func (c *ipmiController) suites(ctx context.Context) []types.CipherSuiteID {
	cl, err := client.NewClient(c.host, c.port, c.b.Username, c.pw.reveal())
	if err != nil {
		return types.PreferredCiphers
	}
	qctx, cancel := context.WithTimeout(ctx, suiteQueryWait)
	defer cancel()
	recs, err := cl.GetAllChannelCipherSuites(qctx, types.ChannelNumberSelf)
	// No session was opened: a cancelled context skips Close Session and
	// only frees the socket.
	done, stop := context.WithCancel(ctx)
	stop()
	_ = cl.Close(done)
	if err != nil || len(recs) == 0 {
		c.log.Debug("IPMI cipher suites not listed; trying the usual ones", "err", c.pw.scrub(err))
		return types.PreferredCiphers
	}
	ids := make([]types.CipherSuiteID, len(recs))
	for i, r := range recs {
		ids[i] = r.CipherSuitID
	}
	return types.SortCipherSuites(ids)
}

// session runs fn in a fresh session and closes it.
func (c *ipmiController) session(ctx context.Context, fn func(*client.Client) error) error {
	cl, err := client.NewClient(c.host, c.port, c.b.Username, c.pw.reveal())
	if err != nil {
		return fmt.Errorf("node %s: IPMI: %w", c.b.Node, c.pw.scrub(err))
	}
	cl.WithInterface(client.Interface(c.b.IPMIInterface()))
	if len(c.suite) > 0 {
		cl.WithCipherSuiteID(c.suite...)
	}
	if err := cl.Connect(ctx); err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ipmiCloseWait)
		_ = cl.Close(closeCtx)
		cancel()
		return fmt.Errorf("node %s: no IPMI %s session with %s:%d as user %q (wrong username or password in %s, a user without admin privilege, or no BMC there): %w",
			c.b.Node, c.b.IPMIInterface(), c.host, c.port, c.b.Username, c.b.passwordSource(), c.pw.scrub(err))
	}
	defer func() {
		// Closing frees one of the BMC's few session slots, worth a few
		// seconds; but once the caller's time is up it must not hold
		// the caller (a slow BMC held WaitFor 2.5 s past its deadline).
		wait := ipmiSessionCloseWait
		if ctx.Err() != nil {
			wait = ipmiCloseWait
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		defer cancel()
		if err := cl.Close(closeCtx); err != nil {
			c.log.Debug("IPMI close session failed", "err", c.pw.scrub(err))
		}
	}()
	if err := fn(cl); err != nil {
		return fmt.Errorf("node %s: IPMI %s:%d: %w", c.b.Node, c.host, c.port, c.pw.scrub(err))
	}
	return nil
}

func (c *ipmiController) PowerState(ctx context.Context) (State, error) {
	s := Unknown
	err := c.session(ctx, func(cl *client.Client) error {
		st, err := cl.GetChassisStatus(ctx)
		if err != nil {
			return fmt.Errorf("get chassis status: %w", err)
		}
		s = Off
		if st.PowerIsOn {
			s = On
		}
		return nil
	})
	return s, err
}

func (c *ipmiController) PowerOff(ctx context.Context) error {
	return c.control(ctx, chassis.ChassisControlPowerDown, "power off", Off)
}

func (c *ipmiController) PowerOn(ctx context.Context) error {
	return c.control(ctx, chassis.ChassisControlPowerUp, "power on", On)
}

// control sends a chassis control unless the chassis is already in the
// state it leads to, in the same session: a power-up of a chassis that is
// on is harmless on most BMCs but not all.
func (c *ipmiController) control(ctx context.Context, ctl chassis.ChassisControl, name string, to State) error {
	return c.session(ctx, func(cl *client.Client) error {
		st, err := cl.GetChassisStatus(ctx)
		if err != nil {
			return fmt.Errorf("get chassis status: %w", err)
		}
		if st.PowerIsOn == (to == On) {
			c.log.Info("BMC power already in state; nothing to do", "state", string(to))
			return nil
		}
		c.log.Info("BMC chassis control", "control", name)
		if _, err := cl.ChassisControl(ctx, ctl); err != nil {
			return fmt.Errorf("chassis %s: %w", name, err)
		}
		return nil
	})
}
