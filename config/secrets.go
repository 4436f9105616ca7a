package config

import "fmt"

// SecretFile is a file the config names that holds a secret, with the key
// that names it.
type SecretFile struct {
	Key, Path string
}

// SecretFiles lists every file of c that holds a secret: the users and
// groups files, token keys, upstream passwords and Docker configs, the
// cluster secret, the encryption key and private keys. They should be readable by Berth alone.
func (c Config) SecretFiles() []SecretFile {
	var out []SecretFile
	add := func(key, path string) {
		if path != "" {
			out = append(out, SecretFile{Key: key, Path: path})
		}
	}
	if c.Auth.Enabled {
		add("auth.htpasswd", c.Auth.Htpasswd)
		add("auth.groupsFile", c.Auth.GroupsFile)
		for i, k := range c.Auth.TokenKeys {
			add(fmt.Sprintf("auth.tokenKeys[%d]", i), k)
		}
	}
	for i, u := range c.Upstreams {
		at := fmt.Sprintf("upstreams[%d]", i)
		add(at+".passwordFile", u.PasswordFile)
		add(at+".dockerConfig", u.DockerConfig)
		for j, cr := range u.Credentials {
			add(fmt.Sprintf("%s.credentials[%d].passwordFile", at, j), cr.PasswordFile)
		}
	}
	if c.TLS.Listen != "" {
		add("tls.keyFile", c.TLS.KeyFile)
	}
	if c.Cluster.Enabled() {
		add("cluster.secretFile", c.Cluster.SecretFile)
		add("cluster.tls.keyFile", c.Cluster.TLS.KeyFile)
	}
	add("encryption.keyFile", c.Encryption.KeyFile)
	return out
}
