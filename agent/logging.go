package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// logSink is a log file (or stderr) behind a logger. It is reopened on
// every reload (SIGHUP), so that logrotate can move the file away; with a
// rotation size it rotates the file itself (lumberjack: the file renamed
// with a timestamp when it would pass the size, at most the given number
// of old files kept). A sink with no file of its own writes to its
// fallback, or to stderr.
type logSink struct {
	mu       sync.Mutex
	path     string
	rot      rotation
	w        io.WriteCloser // *os.File or *lumberjack.Logger; nil: fallback or stderr
	fallback *logSink
}

// rotation is [log] max_size (MiB; 0: the agent does not rotate) and
// max_files (old files kept).
type rotation struct{ sizeMiB, keep int }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		if s.fallback != nil {
			return s.fallback.Write(p)
		}
		return os.Stderr.Write(p)
	}
	return s.w.Write(p)
}

func (s *logSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.w.(*os.File); ok {
		return f.Sync()
	}
	return nil
}

// open switches the sink to path ("" is the fallback or stderr) with
// rotation rot; on error the old destination stays.
func (s *logSink) open(path string, rot rotation) error {
	var w io.WriteCloser
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("log file %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("log file %s: %w", path, err)
		}
		w = f
		if rot.sizeMiB > 0 {
			// lumberjack opens the file itself, on the first write; the
			// open above checked that it can.
			f.Close()
			w = &lumberjack.Logger{Filename: path, MaxSize: rot.sizeMiB, MaxBackups: rot.keep}
		}
	}
	s.mu.Lock()
	old := s.w
	s.w, s.path, s.rot = w, path, rot
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Close()
		s.w = nil
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
