package state

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoState: the bucket a command was told to read does not exist.
var ErrNoState = errors.New("no migration state")

// KV is a Store in a JetStream key-value bucket on the target: the
// migration's memory survives the machine that ran it, and several
// machines can share it. Every write is a compare-and-set on the key's
// revision (the server's expected-last-subject-sequence check).
type KV struct {
	js       jetstream.JetStream
	bucket   string
	replicas int

	// kv is nil until the first write makes the bucket: a run refused
	// before it writes anything leaves the target as it was.
	mu sync.Mutex
	kv jetstream.KeyValue
	// ttl: the bucket takes per-key TTLs (nats-server 2.11+).
	ttl bool
}

// KVOptions say how to make the bucket when it is missing.
type KVOptions struct {
	// Create makes the bucket when it does not exist; without it a
	// missing bucket is ErrNoState.
	Create   bool
	Replicas int
}

// compressAbove: larger values are stored gzipped (a plan of thousands
// of channels would not fit in one message otherwise).
const compressAbove = 64 << 10

// OpenKV opens the bucket. With o.Create a missing bucket is made by
// the first write; without, it is ErrNoState.
func OpenKV(ctx context.Context, js jetstream.JetStream, bucket string, o KVOptions) (*KV, error) {
	if err := validBucket(bucket); err != nil {
		return nil, err
	}
	s := &KV{js: js, bucket: bucket, replicas: o.Replicas}
	var kv jetstream.KeyValue
	err := retry(ctx, func() (err error) { kv, err = js.KeyValue(ctx, bucket); return err })
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound) && o.Create:
		return s, nil
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("bucket %q on the target: %w (check --state, or run migrate first)", bucket, ErrNoState)
	case err != nil:
		return nil, fmt.Errorf("state bucket %q on the target: %w", bucket, err)
	}
	if err := retry(ctx, func() error { return s.use(ctx, kv) }); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *KV) use(ctx context.Context, kv jetstream.KeyValue) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("state bucket %q on the target: %w", s.bucket, err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		s.ttl = bs.StreamInfo().Config.AllowMsgTTL
	}
	s.kv = kv
	return nil
}

// bucketFor returns the bucket, making it first when write is set; nil
// when it does not exist and nothing is to be written.
func (s *KV) bucketFor(ctx context.Context, write bool) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil || !write {
		return s.kv, nil
	}
	var kv jetstream.KeyValue
	err := retry(ctx, func() (err error) { kv, err = createBucket(ctx, s.js, s.bucket, s.replicas); return err })
	if err != nil {
		return nil, fmt.Errorf("create state bucket %q on the target: %w", s.bucket, err)
	}
	return kv, retry(ctx, func() error { return s.use(ctx, kv) })
}

func createBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "stanmigrate: a migration's plan, checkpoints, verified prefixes and worker leases",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
	// Per-key TTLs (nats-server 2.11, JetStream API level 1) let a dead
	// worker's lease vanish by itself.
	if ai, err := js.AccountInfo(ctx); err == nil && ai.API.Level >= 1 {
		cfg.LimitMarkerTTL = time.Minute
	}
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.KeyValue(ctx, bucket)
	}
	return kv, err
}

// transientFor bounds how long one operation rides out a store that
// cannot answer yet (a bucket just made elects its leader; a cluster
// changes leaders).
const transientFor = 30 * time.Second

// retry runs op until it succeeds, fails for good, or a transient fault
// lasted transientFor.
func retry(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(transientFor)
	wait := 50 * time.Millisecond
	for {
		err := op()
		if err == nil || !transient(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func transient(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

func (s *KV) String() string { return fmt.Sprintf("state bucket %q on the target", s.bucket) }

func (s *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	kv, err := s.bucketFor(ctx, false)
	if err != nil {
		return nil, 0, err
	}
	if kv == nil {
		return nil, 0, ErrNotFound
	}
	var e jetstream.KeyValueEntry
	err = retry(ctx, func() (err error) { e, err = kv.Get(ctx, key); return err })
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: get %s: %w", s, key, err)
	}
	v, err := decode(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %s: %w", s, key, err)
	}
	return v, e.Revision(), nil
}

func (s *KV) Put(ctx context.Context, key string, value []byte, rev uint64, opts ...PutOption) (uint64, error) {
	v, err := encode(value)
	if err != nil {
		return 0, err
	}
	kv, err := s.bucketFor(ctx, true)
	if err != nil {
		return 0, err
	}
	o := putOpts(opts)
	var n uint64
	err = retry(ctx, func() (err error) {
		switch {
		case o.ttl > 0 && s.ttl:
			n, err = s.putTTL(ctx, kv, key, v, rev, o.ttl)
		case rev == 0:
			n, err = kv.Create(ctx, key, v)
		default:
			n, err = kv.Update(ctx, key, v, rev)
		}
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLast(err) {
		return 0, fmt.Errorf("%s: %s: %w", s, key, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: put %s: %w", s, key, err)
	}
	return n, nil
}

// putTTL is Create/Update with a per-key TTL on every write (the client's
// Update takes none). A deleted or expired key is at the revision of its
// marker, which a create must name.
func (s *KV) putTTL(ctx context.Context, kv jetstream.KeyValue, key string, v []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if rev == 0 {
		return kv.Create(ctx, key, v, jetstream.KeyTTL(ttl))
	}
	subj := "$KV." + s.bucket + "." + key
	if p := s.js.Options().APIPrefix; p != "" && p != jetstream.DefaultAPIPrefix {
		subj = p + subj
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: v},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func (s *KV) Delete(ctx context.Context, key string) error {
	kv, err := s.bucketFor(ctx, false)
	if err != nil || kv == nil {
		return err
	}
	if err := retry(ctx, func() error { return kv.Delete(ctx, key) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s: delete %s: %w", s, key, err)
	}
	return nil
}

func (s *KV) Keys(ctx context.Context, kind string) ([]string, error) {
	filter := kind + ".>"
	if kind == KindPlan {
		filter = PlanKey
	}
	kv, err := s.bucketFor(ctx, false)
	if err != nil || kv == nil {
		return nil, err
	}
	var l jetstream.KeyLister
	if err := retry(ctx, func() (err error) { l, err = kv.ListKeysFiltered(ctx, filter); return err }); err != nil {
		return nil, fmt.Errorf("%s: list %s keys: %w", s, kind, err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Destroy deletes the bucket.
func (s *KV) Destroy(ctx context.Context) error {
	if err := s.js.DeleteKeyValue(ctx, s.bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete %s: %w", s, err)
	}
	return nil
}

var gzipMagic = []byte{0x1f, 0x8b}

func encode(v []byte) ([]byte, error) {
	if len(v) <= compressAbove {
		return v, nil
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(v); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decode undoes encode: our values are JSON or YAML text, so a gzip
// header can only be ours.
func decode(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, gzipMagic) {
		return v, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(v))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return out, nil
}
