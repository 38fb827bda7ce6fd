package engines

import "context"

type stepKey struct{}

// WithSteps returns a context whose installs report their steps (an
// apt-get, a Maven download, a build) to fn, as net/http/httptrace carries
// its hooks: Install methods keep their signature, and a caller that wants
// no progress passes nothing.
func WithSteps(ctx context.Context, fn func(detail string)) context.Context {
	return context.WithValue(ctx, stepKey{}, fn)
}

// Step reports one step of a long install to the function WithSteps set
// on ctx, if any.
func Step(ctx context.Context, detail string) {
	if fn, ok := ctx.Value(stepKey{}).(func(string)); ok && fn != nil {
		fn(detail)
	}
}
