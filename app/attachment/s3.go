package attachment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 keeps objects in a bucket of an S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, Garage, R2…) through minio-go: the content as the
// object <prefix><id>, its type as the object's Content-Type and the rest
// of Meta as user metadata (x-amz-meta-aurora-*, percent-encoded: header
// values are ASCII). An object store's PUT is atomic: a failed or refused
// upload leaves no object.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
	secure bool
}

// S3Config is where an S3 storage is: parsed from attachments.s3_url
// (ParseS3URL), with the keys from attachments.s3_access_key and
// s3_secret_key or, when those are empty, the environment's
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
type S3Config struct {
	Endpoint  string // host[:port]
	Bucket    string
	Prefix    string // key prefix, "" or ending in "/"
	Region    string
	Secure    bool // https
	PathStyle bool // bucket in the path, not the host name
	AccessKey string
	SecretKey string
}

// DefaultS3Endpoint is the endpoint when the URL names none.
const DefaultS3Endpoint = "s3.amazonaws.com"

// ParseS3URL reads s3://bucket[/prefix]?endpoint=host:port&region=r&
// secure=false&path_style=true. endpoint defaults to AWS
// (DefaultS3Endpoint), secure to true; path_style defaults to what
// minio-go decides (path style for every endpoint but AWS's and a few
// clouds').
func ParseS3URL(raw string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return S3Config{}, fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, errors.New("must be an s3:// URL like s3://bucket?endpoint=host:9000&region=us-east-1")
	}
	if u.User != nil {
		return S3Config{}, errors.New("must not carry keys: set attachments.s3_access_key and s3_secret_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	c := S3Config{Bucket: u.Host, Endpoint: DefaultS3Endpoint, Secure: true}
	if c.Bucket == "" {
		return S3Config{}, errors.New("names no bucket (s3://bucket?...)")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		c.Prefix = p + "/"
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "secure", "path_style":
		default:
			return S3Config{}, fmt.Errorf("has unknown parameter %q (known: endpoint, region, secure, path_style)", k)
		}
	}
	if e := q.Get("endpoint"); e != "" {
		if strings.Contains(e, "/") {
			return S3Config{}, fmt.Errorf("endpoint %q must be host[:port], without a scheme or path (secure=false for http)", e)
		}
		c.Endpoint = e
	}
	c.Region = q.Get("region")
	for _, b := range []struct {
		key string
		to  *bool
	}{{"secure", &c.Secure}, {"path_style", &c.PathStyle}} {
		if s := q.Get(b.key); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return S3Config{}, fmt.Errorf("%s=%q is not true or false", b.key, s)
			}
			*b.to = v
		}
	}
	return c, nil
}

// partSize is the part of a multipart upload (an upload of unknown length,
// multipart/form-data): the S3 minimum, and what one upload holds in
// memory while it streams.
const partSize = 5 << 20

// NewS3 returns an S3 storage of c. The bucket must exist; NewS3 does not
// contact the store.
func NewS3(c S3Config) (*S3, error) {
	creds := credentials.NewEnvAWS()
	if c.AccessKey != "" || c.SecretKey != "" {
		creds = credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	}
	opts := &minio.Options{Creds: creds, Secure: c.Secure, Region: c.Region}
	if c.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	client, err := minio.New(c.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	return &S3{client: client, bucket: c.Bucket, prefix: c.Prefix, secure: c.Secure}, nil
}

// EnvKeys reports whether the environment holds AWS keys (for the config
// check that an S3 storage has keys at all).
func EnvKeys() bool {
	return os.Getenv("AWS_ACCESS_KEY_ID") != "" && os.Getenv("AWS_SECRET_ACCESS_KEY") != ""
}

// The user metadata keys (after x-amz-meta-).
const (
	s3Room     = "aurora-room"
	s3Filename = "aurora-filename"
	s3Uploader = "aurora-uploader"
	s3Created  = "aurora-created"
)

func (s *S3) key(id string) string { return s.prefix + id }

// Put implements Storage. The content streams: with a known size in one
// PUT, else as a multipart upload holding one part (partSize) in memory.
func (s *S3) Put(ctx context.Context, meta Meta, r io.Reader, size, limit int64) (Object, error) {
	if size > limit {
		return Object{}, ErrTooLarge
	}
	id, err := NewID()
	if err != nil {
		return Object{}, fmt.Errorf("new attachment id: %w", err)
	}
	meta.Created = time.Now().UTC()
	lr := &limited{r: r, limit: limit}
	info, err := s.client.PutObject(ctx, s.bucket, s.key(id), lr, size, minio.PutObjectOptions{
		ContentType: meta.FileType,
		UserMetadata: map[string]string{
			s3Room:     url.PathEscape(meta.Room),
			s3Filename: url.PathEscape(meta.Filename),
			s3Uploader: url.PathEscape(meta.Uploader),
			s3Created:  meta.Created.Format(time.RFC3339Nano),
		},
		PartSize: partSize,
		// Over https minio-go sends the payload unsigned (TLS protects
		// it); over plain http it would sign each chunk (aws-chunked),
		// which some S3-compatible servers store undecoded in multipart
		// parts (gofakes3 does). Unsigned there too: the request is still
		// signed, and plain http is for a store on a private network.
		DisableContentSha256: !s.secure,
	})
	if lr.n > limit {
		// minio-go aborts the multipart upload (or never completes the PUT)
		// when the reader fails; delete anyway in case a store kept it.
		_ = s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, s.key(id), minio.RemoveObjectOptions{})
		return Object{}, ErrTooLarge
	}
	if err != nil {
		return Object{}, fmt.Errorf("put attachment to s3 bucket %s: %w", s.bucket, err)
	}
	meta.Size = info.Size
	return Object{ID: id, Meta: meta}, nil
}

// Stat implements Storage.
func (s *S3) Stat(ctx context.Context, id string) (Object, error) {
	if !ValidID(id) {
		return Object{}, ErrNotFound
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.key(id), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.objectErr("stat", id, err)
	}
	return s.object(id, info), nil
}

// Open implements Storage.
func (s *S3) Open(ctx context.Context, id string) (io.ReadCloser, Object, error) {
	if !ValidID(id) {
		return nil, Object{}, ErrNotFound
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(id), minio.GetObjectOptions{})
	if err != nil {
		return nil, Object{}, s.objectErr("get", id, err)
	}
	// GetObject is lazy: Stat makes the request, so a missing object is
	// ErrNotFound here and not at the first Read.
	info, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		return nil, Object{}, s.objectErr("get", id, err)
	}
	return obj, s.object(id, info), nil
}

// Delete implements Storage (S3 deletes of a missing key succeed).
func (s *S3) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return nil
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(id), minio.RemoveObjectOptions{}); err != nil {
		if isNoSuchKey(err) {
			return nil
		}
		return fmt.Errorf("delete attachment %s from s3 bucket %s: %w", id, s.bucket, err)
	}
	return nil
}

func isNoSuchKey(err error) bool {
	return minio.ToErrorResponse(err).Code == minio.NoSuchKey
}

func (s *S3) objectErr(op, id string, err error) error {
	if isNoSuchKey(err) {
		return ErrNotFound
	}
	return fmt.Errorf("%s attachment %s in s3 bucket %s: %w", op, id, s.bucket, err)
}

// object reads Meta back from an object's headers.
func (s *S3) object(id string, info minio.ObjectInfo) Object {
	get := func(k string) string {
		for mk, v := range info.UserMetadata {
			if strings.EqualFold(mk, k) {
				if d, err := url.PathUnescape(v); err == nil {
					return d
				}
				return v
			}
		}
		return ""
	}
	o := Object{ID: id, Meta: Meta{
		Room:     get(s3Room),
		Filename: get(s3Filename),
		FileType: info.ContentType,
		Size:     info.Size,
		Uploader: get(s3Uploader),
	}}
	if t, err := time.Parse(time.RFC3339Nano, get(s3Created)); err == nil {
		o.Created = t
	} else {
		o.Created = info.LastModified.UTC()
	}
	return o
}
