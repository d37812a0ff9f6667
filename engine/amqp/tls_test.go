package amqp

import (
	"testing"

	"statscache/engine/amqp/amqptest"
)

// TestTLSConfig: the CA, certificate and key files make the TLS
// configuration, and a client certificate without a password in the URL
// means EXTERNAL authentication (Fedora's broker), with one PLAIN.
func TestTLSConfig(t *testing.T) {
	f := amqptest.NewTLSFiles(t, "fedora")
	ca, cert, key := f.CA, f.Cert, f.Key
	c := Config{URL: FedoraURL, Queue: NewQueueName(), CAFile: ca, CertFile: cert, KeyFile: key}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := c.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.MinVersion < 0x0303 {
		t.Errorf("TLS config %+v", tc)
	}
	for _, x := range []struct {
		url, cert string
		want      bool
	}{
		{FedoraURL, cert, true},
		{"amqps://fedora:@host/%2Fpublic_pubsub", cert, true},
		{"amqps://host/", cert, true},
		{"amqps://user:secret@host/", cert, false},
		{FedoraURL, "", false},
	} {
		c := Config{URL: x.url, CertFile: x.cert}
		if got := c.external(); got != x.want {
			t.Errorf("external(%s, cert %q) = %v, want %v", x.url, x.cert, got, x.want)
		}
	}
	bad := Config{URL: FedoraURL, Queue: "q", CAFile: ca, CertFile: cert, KeyFile: ca} // key does not match
	if err := bad.Validate(); err == nil {
		t.Error("a key that does not match its certificate validated")
	}
}
