package node

import (
	"os"

	"berth/config"

	"go.uber.org/zap"
)

// warnReadableSecrets warns about every secret file of cfg that its group
// or others may read, with the command that fixes it.
func warnReadableSecrets(log *zap.Logger, cfg config.Config) {
	for _, f := range cfg.SecretFiles() {
		fi, err := os.Stat(f.Path)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		log.Warn("a secret file is readable by other users; make it readable by berth alone",
			zap.String("key", f.Key), zap.String("file", f.Path), zap.Stringer("mode", fi.Mode().Perm()),
			zap.String("fix", "chmod 600 "+f.Path))
	}
}
