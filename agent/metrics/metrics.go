package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Domain is one domain as a scrape sees it.
type Domain struct {
	Name, State, Engine string
	CPUSeconds          float64
	ResidentBytes       int64
	DirtyBytesPerSecond float64
	DiskReadBytes       int64
	DiskWriteBytes      int64
	NetReceiveBytes     int64
	NetTransmitBytes    int64
}

// Repository is one repository as a scrape sees it.
type Repository struct {
	UUID, State string
	SizeBytes   uint64
	FreeBytes   uint64
}

// Source is what a scrape reads from the agent.
type Source interface {
	Domains() []Domain
	Repositories() []Repository
}

// Metrics is the agent's registry of metric families.
type Metrics struct {
	reg   *prometheus.Registry
	known func(method string) bool

	apiCalls      *prometheus.CounterVec
	apiSeconds    *prometheus.HistogramVec
	loginFailures prometheus.Counter
	relocRefused  *prometheus.CounterVec
	migrations    *prometheus.CounterVec
	migSeconds    prometheus.Histogram
	migDowntime   prometheus.Histogram
	migSent       prometheus.Counter
	migThrottle   prometheus.Histogram
}

// New registers the agent's metrics; known says whether a method name is
// one the agent serves (the label of any other is "unknown").
func New(src Source, known func(method string) bool) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), known: known}
	m.apiCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ovs_api_requests_total", Help: "API calls by method and result (ok or fault).",
	}, []string{"method", "result"})
	m.apiSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ovs_api_request_duration_seconds", Help: "Time to answer an API call, by method.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30},
	}, []string{"method"})
	m.loginFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ovs_api_login_failures_total", Help: "API logins refused for a wrong user name or password.",
	})
	m.relocRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ovs_relocation_refused_total", Help: "Relocation connections refused, by reason (hosts_allow, login, limit, handshake).",
	}, []string{"reason"})
	m.migrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ovs_migrations_total", Help: "Outgoing migrations that ended, by outcome (completed, failed, cancelled).",
	}, []string{"outcome"})
	m.migSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ovs_migration_duration_seconds", Help: "Total time of completed outgoing migrations, from the call to the end.",
		Buckets: []float64{.25, .5, 1, 2, 5, 10, 30, 60, 300},
	})
	m.migDowntime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ovs_migration_downtime_seconds", Help: "Downtime of completed live migrations (the guest paused on neither host).",
		Buckets: []float64{.005, .01, .02, .05, .1, .2, .5, 1, 5},
	})
	m.migSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ovs_migration_sent_bytes_total", Help: "Bytes outgoing migrations sent.",
	})
	m.migThrottle = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ovs_migration_max_throttle_ratio", Help: "The highest vCPU throttle of each ended migration (auto-converge), 0 to 1.",
		Buckets: []float64{0, .1, .2, .4, .6, .8, .99},
	})
	m.reg.MustRegister(m.apiCalls, m.apiSeconds, m.loginFailures, m.relocRefused, m.migrations,
		m.migSeconds, m.migDowntime, m.migSent, m.migThrottle, &scrape{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// APICall counts one API call.
func (m *Metrics) APICall(method string, fault bool, d time.Duration) {
	if m == nil {
		return
	}
	if m.known == nil || !m.known(method) {
		method = "unknown"
	}
	result := "ok"
	if fault {
		result = "fault"
	}
	m.apiCalls.WithLabelValues(method, result).Inc()
	m.apiSeconds.WithLabelValues(method).Observe(d.Seconds())
}

// LoginFailed counts a refused API login.
func (m *Metrics) LoginFailed() {
	if m != nil {
		m.loginFailures.Inc()
	}
}

// Relocation refusal reasons.
const (
	RefusedHostsAllow = "hosts_allow"
	RefusedLogin      = "login"
	RefusedLimit      = "limit"
	RefusedHandshake  = "handshake"
)

// RelocationRefused counts a refused relocation connection.
func (m *Metrics) RelocationRefused(reason string) {
	if m == nil {
		return
	}
	switch reason {
	case RefusedHostsAllow, RefusedLogin, RefusedLimit, RefusedHandshake:
	default:
		reason = "other"
	}
	m.relocRefused.WithLabelValues(reason).Inc()
}

// Migration is an outgoing migration that ended.
type Migration struct {
	Outcome       string // completed, failed, cancelled
	Live          bool
	Total         time.Duration
	Downtime      time.Duration
	SentBytes     int64
	MaxThrottlePc int
}

// MigrationEnded counts an ended outgoing migration.
func (m *Metrics) MigrationEnded(g Migration) {
	if m == nil {
		return
	}
	switch g.Outcome {
	case "completed", "failed", "cancelled":
	default:
		g.Outcome = "other"
	}
	m.migrations.WithLabelValues(g.Outcome).Inc()
	m.migSent.Add(float64(max(g.SentBytes, 0)))
	m.migThrottle.Observe(float64(g.MaxThrottlePc) / 100)
	if g.Outcome == "completed" {
		m.migSeconds.Observe(g.Total.Seconds())
		if g.Live {
			m.migDowntime.Observe(g.Downtime.Seconds())
		}
	}
}

// scrape collects what is read at scrape time.
type scrape struct{ src Source }

var (
	descDomains    = prometheus.NewDesc("ovs_domains", "Domains on this host, by state and engine.", []string{"state", "engine"}, nil)
	descCPU        = prometheus.NewDesc("ovs_domain_cpu_seconds_total", "CPU time the domain's VMM and guest used.", []string{"domain"}, nil)
	descResident   = prometheus.NewDesc("ovs_domain_resident_memory_bytes", "Host memory the domain holds (resident).", []string{"domain"}, nil)
	descDirty      = prometheus.NewDesc("ovs_domain_dirty_bytes_per_second", "Rate at which the guest writes its memory.", []string{"domain"}, nil)
	descDiskRead   = prometheus.NewDesc("ovs_domain_disk_read_bytes_total", "Bytes the guest read from its disks.", []string{"domain"}, nil)
	descDiskWrite  = prometheus.NewDesc("ovs_domain_disk_written_bytes_total", "Bytes the guest wrote to its disks.", []string{"domain"}, nil)
	descNetRx      = prometheus.NewDesc("ovs_domain_network_receive_bytes_total", "Bytes the guest's network interfaces received.", []string{"domain"}, nil)
	descNetTx      = prometheus.NewDesc("ovs_domain_network_transmit_bytes_total", "Bytes the guest's network interfaces sent.", []string{"domain"}, nil)
	descRepos      = prometheus.NewDesc("ovs_repositories", "Repositories, by state.", []string{"state"}, nil)
	descRepoSize   = prometheus.NewDesc("ovs_repository_size_bytes", "Size of a mounted repository's file system.", []string{"repository"}, nil)
	descRepoFree   = prometheus.NewDesc("ovs_repository_free_bytes", "Free space of a mounted repository's file system.", []string{"repository"}, nil)
	scrapeDescribe = []*prometheus.Desc{descDomains, descCPU, descResident, descDirty, descDiskRead, descDiskWrite, descNetRx, descNetTx, descRepos, descRepoSize, descRepoFree}
)

func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range scrapeDescribe {
		ch <- d
	}
}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	if s.src == nil {
		return
	}
	type key struct{ state, engine string }
	counts := map[key]int{}
	for _, d := range s.src.Domains() {
		counts[key{d.State, d.Engine}]++
		if d.State != "running" && d.State != "paused" {
			continue // counters of a domain with no VMM are not there
		}
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, d.CPUSeconds, d.Name)
		ch <- prometheus.MustNewConstMetric(descResident, prometheus.GaugeValue, float64(d.ResidentBytes), d.Name)
		ch <- prometheus.MustNewConstMetric(descDirty, prometheus.GaugeValue, d.DirtyBytesPerSecond, d.Name)
		ch <- prometheus.MustNewConstMetric(descDiskRead, prometheus.CounterValue, float64(d.DiskReadBytes), d.Name)
		ch <- prometheus.MustNewConstMetric(descDiskWrite, prometheus.CounterValue, float64(d.DiskWriteBytes), d.Name)
		ch <- prometheus.MustNewConstMetric(descNetRx, prometheus.CounterValue, float64(d.NetReceiveBytes), d.Name)
		ch <- prometheus.MustNewConstMetric(descNetTx, prometheus.CounterValue, float64(d.NetTransmitBytes), d.Name)
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descDomains, prometheus.GaugeValue, float64(n), k.state, k.engine)
	}
	states := map[string]int{}
	for _, r := range s.src.Repositories() {
		states[r.State]++
		if r.SizeBytes > 0 {
			ch <- prometheus.MustNewConstMetric(descRepoSize, prometheus.GaugeValue, float64(r.SizeBytes), r.UUID)
			ch <- prometheus.MustNewConstMetric(descRepoFree, prometheus.GaugeValue, float64(r.FreeBytes), r.UUID)
		}
	}
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(descRepos, prometheus.GaugeValue, float64(n), st)
	}
}
