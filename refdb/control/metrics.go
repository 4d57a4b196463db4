package control

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg          *prometheus.Registry
	heartbeat    *prometheus.HistogramVec
	heartbeatErr *prometheus.CounterVec
	failovers    *prometheus.CounterVec
	failoverDur  *prometheus.HistogramVec
	lag          *prometheus.GaugeVec
	healthy      *prometheus.GaugeVec
	epoch        prometheus.Gauge
	vdl          prometheus.Gauge
	restarts     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		heartbeat: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "refdb_control_heartbeat_seconds",
			Help:    "Latency of successful instance heartbeats (GET /status).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)}, []string{"instance"}),
		heartbeatErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refdb_control_heartbeat_failures_total",
			Help: "Heartbeats that failed or timed out."}, []string{"instance"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refdb_control_failovers_total",
			Help: "Failovers by kind (automatic, planned) and result (ok, error, restart)."}, []string{"kind", "result"}),
		failoverDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "refdb_control_failover_duration_seconds",
			Help:    "From the failover decision to the new writer serving.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refdb_reader_lag_milliseconds",
			Help: "Replica lag each reader reports (commit ack on the writer to the reader's read point)."}, []string{"instance"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refdb_instance_healthy",
			Help: "1 when the instance's last heartbeat succeeded and it reported healthy."}, []string{"instance", "role"}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "refdb_volume_epoch", Help: "Epoch of the current writer."}),
		vdl:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "refdb_volume_vdl", Help: "Volume durable LSN the writer reports."}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refdb_control_restarts_total",
			Help: "Instance processes the control plane restarted, by role."}, []string{"role"}),
	}
	m.reg.MustRegister(m.heartbeat, m.heartbeatErr, m.failovers, m.failoverDur, m.lag, m.healthy, m.epoch, m.vdl, m.restarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
