package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logSink is the log file (or stderr) behind the logger. It can be
// reopened on reload so that logrotate can move the file away.
type logSink struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return os.Stderr.Write(p)
	}
	return s.f.Write(p)
}

func (s *logSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	return s.f.Sync()
}

// open switches the sink to path ("" is stderr); on error the old
// destination stays.
func (s *logSink) open(path string) error {
	var f *os.File
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("log file %s: %w", path, err)
		}
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("log file %s: %w", path, err)
		}
	}
	s.mu.Lock()
	old := s.f
	s.f, s.path = f, path
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// newLogger builds the agent's JSON logger writing to sink at level.
func newLogger(sink *logSink, level zap.AtomicLevel) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(sink), level)
	return zap.New(core)
}

// parseLevel maps the config's level names to zap's.
func parseLevel(s string) (zapcore.Level, error) {
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
