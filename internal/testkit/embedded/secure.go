package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nkeys"
)

// Security says how an embedded server is secured, the way an operator's
// configuration file would. The zero value is an open server. Use at most
// one way of authenticating (Users and NKeys may be combined).
type Security struct {
	// Users authenticate with a name and password; permissions optional.
	Users []*natsd.User
	// NKeys authenticate by signing the server's nonce.
	NKeys []*natsd.NkeyUser
	// Token is the one authorization token clients must present.
	Token string
	// Operator switches to decentralised authentication: users present a
	// JWT signed by one of the operator's accounts (a credentials file).
	Operator *Operator
	// TLS: the server's certificate and key. TLSCA is the CA client
	// certificates must chain to when VerifyClients (mutual TLS) is set.
	TLSCert, TLSKey, TLSCA string
	VerifyClients          bool
}

// Client is how the STAN server's own connections authenticate to the NATS
// server it embeds. nats-streaming-server opens several connections to it
// (server.go createNatsClientConn) with exactly these settings.
type Client struct {
	User, Password string
	Token          string
	NKeySeedFile   string
	Creds          string
	// CA to verify the NATS server's certificate; Cert and Key for mutual TLS.
	CA, Cert, Key string
}

func (sec Security) tls() bool { return sec.TLSCert != "" }

// apply sets the NATS server options.
func (sec Security) apply(o *natsd.Options) error {
	if sec.Token != "" && (len(sec.Users) > 0 || len(sec.NKeys) > 0) {
		return errors.New("embedded: a token cannot be combined with users or nkeys")
	}
	o.Users = sec.Users
	o.Nkeys = sec.NKeys
	o.Authorization = sec.Token
	if sec.Operator != nil {
		o.TrustedOperators = []*jwt.OperatorClaims{sec.Operator.claims}
		o.AccountResolver = sec.Operator.resolver
		o.SystemAccount = sec.Operator.sys.PublicKey
	}
	if sec.tls() {
		o.TLSCert, o.TLSKey, o.TLSCaCert, o.TLSVerify = sec.TLSCert, sec.TLSKey, sec.TLSCA, sec.VerifyClients
		tc, err := natsd.GenTLSConfig(&natsd.TLSConfigOpts{
			CertFile: sec.TLSCert, KeyFile: sec.TLSKey, CaFile: sec.TLSCA, Verify: sec.VerifyClients,
		})
		if err != nil {
			return fmt.Errorf("embedded: TLS: %w", err)
		}
		o.TLSConfig = tc
		o.TLSTimeout = 2
	}
	return nil
}

// ConfigureJetStream returns a JetStreamConfig.Configure hook that secures
// the server.
func (sec Security) ConfigureJetStream() (func(*natsd.Options), error) {
	if err := sec.apply(&natsd.Options{}); err != nil {
		return nil, err
	}
	return func(o *natsd.Options) { _ = sec.apply(o) }, nil
}

// ConfigureSTAN returns a STANConfig.Configure hook that secures the NATS
// server STAN embeds and gives STAN's own connections the internal
// client's settings. With TLS the monitoring port serves HTTPS (with the
// server's certificate; STAN.MonitorURL then says https).
func (sec Security) ConfigureSTAN(internal Client) (func(*stand.Options, *natsd.Options), error) {
	if err := sec.apply(&natsd.Options{}); err != nil {
		return nil, err
	}
	return func(s *stand.Options, n *natsd.Options) {
		_ = sec.apply(n)
		if sec.tls() && n.HTTPPort > 0 {
			n.HTTPSPort, n.HTTPPort = n.HTTPPort, 0
		}
		s.Username, s.Password = internal.User, internal.Password
		s.Token = internal.Token
		s.NKeySeedFile = internal.NKeySeedFile
		s.NATSCredentials = internal.Creds
		s.ClientCA, s.ClientCert, s.ClientKey = internal.CA, internal.Cert, internal.Key
	}, nil
}

// Operator is a decentralised-authentication setup held in memory: an
// operator, its system account and the accounts created with NewAccount.
type Operator struct {
	kp       nkeys.KeyPair
	claims   *jwt.OperatorClaims
	resolver *natsd.MemAccResolver
	sys      *Account
}

// Account is an account of an Operator.
type Account struct {
	Name      string
	PublicKey string
	kp        nkeys.KeyPair
}

// NewOperator creates an operator with a system account.
func NewOperator() (*Operator, error) {
	kp, err := nkeys.CreateOperator()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	claims := jwt.NewOperatorClaims(pub)
	claims.Name = "stanmigrate-test"
	// Encode validates the claims; servers take the decoded form.
	tok, err := claims.Encode(kp)
	if err != nil {
		return nil, fmt.Errorf("embedded: operator JWT: %w", err)
	}
	if claims, err = jwt.DecodeOperatorClaims(tok); err != nil {
		return nil, err
	}
	op := &Operator{kp: kp, claims: claims, resolver: &natsd.MemAccResolver{}}
	if op.sys, err = op.NewAccount("SYS", false); err != nil {
		return nil, err
	}
	return op, nil
}

// NewAccount registers an account, with unlimited JetStream when
// jetStream is set (without it, JetStream is not enabled for the account).
func (op *Operator) NewAccount(name string, jetStream bool) (*Account, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	if jetStream {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
	}
	tok, err := ac.Encode(op.kp)
	if err != nil {
		return nil, fmt.Errorf("embedded: account %s JWT: %w", name, err)
	}
	if err := op.resolver.Store(pub, tok); err != nil {
		return nil, err
	}
	return &Account{Name: name, PublicKey: pub, kp: kp}, nil
}

// WriteCreds creates a user of the account and writes its credentials
// file (JWT and seed, 0600). perms nil means no restriction.
func (a *Account) WriteCreds(path, user string, perms *jwt.Permissions) error {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	pub, _ := kp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = user
	if perms != nil {
		uc.Permissions = *perms
	}
	tok, err := uc.Encode(a.kp)
	if err != nil {
		return fmt.Errorf("embedded: user %s JWT: %w", user, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return err
	}
	return os.WriteFile(path, creds, 0o600)
}

// AccountCreds registers an account (with unlimited JetStream when
// jetStream is set) and writes the credentials file of one user of it.
func (op *Operator) AccountCreds(path, account, user string, jetStream bool) error {
	acc, err := op.NewAccount(account, jetStream)
	if err != nil {
		return err
	}
	return acc.WriteCreds(path, user, nil)
}

// UntrustedCreds writes the credentials file of a user under an operator
// of its own, which no server trusts.
func UntrustedCreds(path string) error {
	op, err := NewOperator()
	if err != nil {
		return err
	}
	return op.AccountCreds(path, "X", "x", true)
}

// WriteNKey creates a user NKey, writes its seed to path (0600) and
// returns the public key a server lists in Security.NKeys.
func WriteNKey(path string) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return "", err
	}
	return kp.PublicKey()
}

// WriteNATSContext saves a NATS CLI context named name under the
// XDG_CONFIG_HOME directory xdg, as `nats context save` would (0600).
func WriteNATSContext(xdg, name string, fields map[string]string) error {
	d := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, name+".json"), data, 0o600)
}
