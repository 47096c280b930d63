package attachment

import (
	"errors"
	"fmt"
	"slices"

	"github.com/auroradev/aurora/config"
)

// FromConfig returns the storage and the policy the configuration names:
// the S3 store of attachments.s3_url when set, else the local directory
// (attachments.dir, default <data_dir>/attachments).
func FromConfig(c *config.Config) (Storage, Policy, error) {
	a := c.Attachments
	p := Policy{MaxBytes: a.MaxBytes, Types: slices.Clone(a.Types)}
	if a.S3URL == "" {
		l, err := NewLocal(c.AttachmentsDir())
		return l, p, err
	}
	sc, err := ParseS3URL(a.S3URL)
	if err != nil {
		return nil, p, fmt.Errorf("attachments.s3_url: %w", err)
	}
	sc.AccessKey, sc.SecretKey = a.S3AccessKey, a.S3SecretKey
	if sc.AccessKey == "" && !EnvKeys() {
		return nil, p, errors.New("attachments.s3_url is set but no keys are: set attachments.s3_access_key and s3_secret_key, " +
			"or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	s, err := NewS3(sc)
	return s, p, err
}
