package main

import (
	"context"
	"flag"

	"berth/config"
	"berth/node"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "config file (built-in defaults when empty)")
	listen := fs.String("listen", "", "override listen address")
	adminListen := fs.String("admin-listen", "", "override admin.listen, the admin API's address")
	dataDir := fs.String("data-dir", "", "override data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := node.LoadConfig(*path)
	if err != nil {
		return err
	}
	overrides := func(c *config.Config) {
		if *listen != "" {
			c.Listen = *listen
		}
		if *adminListen != "" {
			c.Admin.Listen = *adminListen
		}
		if *dataDir != "" {
			c.DataDir = *dataDir
		}
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	return node.Serve(ctx, cfg, node.Options{Logger: log, Version: version, Overrides: overrides})
}

func newLogger(c config.Log) (*zap.Logger, error) {
	zc, err := loggerConfig(c)
	if err != nil {
		return nil, err
	}
	return zc.Build()
}

// loggerConfig is zap's production configuration, or its development one
// for the console format, with timestamps in RFC 3339 (ISO 8601) and Go
// stack traces on errors only, not on every warning.
func loggerConfig(c config.Log) (zap.Config, error) {
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false // development mode adds a stack trace from warn up
	}
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return zc, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return zc, nil
}
