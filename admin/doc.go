// Package admin serves the operator's endpoints on their own listener, never
// the client port: /healthz (the process is alive), /readyz (every readiness
// check and the last reload of each watched file, as JSON; 503 when not
// ready) and /metrics (Prometheus). It knows nothing of the proxy: the
// server registers checks and reports reloads.
package admin
