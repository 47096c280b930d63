package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAttachmentsDefaults(t *testing.T) {
	c := mustLoad(t, "", nil, env())
	a := c.Attachments
	if a.MaxBytes != 10<<20 || a.Dir != "" || a.S3URL != "" || a.UploadsPerMinute != 30 {
		t.Fatalf("defaults %+v", a)
	}
	want := []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "application/zip"}
	if !reflect.DeepEqual(a.Types, want) {
		t.Fatalf("types %q", a.Types)
	}
	if got := c.AttachmentsDir(); got != filepath.Join(c.DataDir, "attachments") {
		t.Fatalf("dir %q", got)
	}
	c.Attachments.Dir = "/srv/files"
	if got := c.AttachmentsDir(); got != "/srv/files" {
		t.Fatalf("dir %q", got)
	}
}

func TestAttachmentsEnv(t *testing.T) {
	c := mustLoad(t, "", nil, env(
		"AURORA_ATTACHMENTS_MAX_BYTES", "1048576",
		"AURORA_ATTACHMENTS_TYPES", "image/png,application/pdf",
		"AURORA_ATTACHMENTS_S3_URL", "s3://files?endpoint=minio:9000&secure=false",
		"AURORA_ATTACHMENTS_S3_ACCESS_KEY", "ak",
		"AURORA_ATTACHMENTS_S3_SECRET_KEY", "sk",
		"AURORA_ATTACHMENTS_UPLOADS_PER_MINUTE", "0",
	))
	a := c.Attachments
	if a.MaxBytes != 1<<20 || !reflect.DeepEqual(a.Types, []string{"image/png", "application/pdf"}) ||
		a.S3URL != "s3://files?endpoint=minio:9000&secure=false" || a.S3AccessKey != "ak" || a.S3SecretKey != "sk" || a.UploadsPerMinute != 0 {
		t.Fatalf("from env: %+v", a)
	}
	if m := c.Masked(); m.Attachments.S3SecretKey == "sk" {
		t.Fatal("s3_secret_key not masked")
	}
}

func TestAttachmentsInvalid(t *testing.T) {
	for _, tc := range []struct {
		kv  []string
		key string
	}{
		{[]string{"AURORA_ATTACHMENTS_MAX_BYTES", "0"}, "attachments.max_bytes"},
		{[]string{"AURORA_ATTACHMENTS_MAX_BYTES", "2147483648"}, "attachments.max_bytes"},
		{[]string{"AURORA_ATTACHMENTS_MAX_BYTES", "big"}, "attachments.max_bytes"},
		{[]string{"AURORA_ATTACHMENTS_UPLOADS_PER_MINUTE", "-1"}, "attachments.uploads_per_minute"},
		{[]string{"AURORA_ATTACHMENTS_UPLOADS_PER_MINUTE", "100001"}, "attachments.uploads_per_minute"},
		{[]string{"AURORA_ATTACHMENTS_TYPES", "image/png,text/html"}, "attachments.types"},
		{[]string{"AURORA_ATTACHMENTS_TYPES", "image/svg+xml"}, "attachments.types"},
		{[]string{"AURORA_ATTACHMENTS_TYPES", "Image/PNG"}, "attachments.types"},
		{[]string{"AURORA_ATTACHMENTS_TYPES", "text/plain; charset=utf-8"}, "attachments.types"},
		{[]string{"AURORA_ATTACHMENTS_TYPES", "png"}, "attachments.types"},
		{[]string{"AURORA_ATTACHMENTS_S3_URL", "https://bucket.s3.amazonaws.com"}, "attachments.s3_url"},
		{[]string{"AURORA_ATTACHMENTS_S3_URL", "s3://"}, "attachments.s3_url"},
		{[]string{"AURORA_ATTACHMENTS_S3_URL", "s3://ak:sk@files"}, "attachments.s3_url"},
		{[]string{"AURORA_ATTACHMENTS_S3_URL", "s3://files", "AURORA_ATTACHMENTS_S3_ACCESS_KEY", "ak"}, "attachments.s3_secret_key"},
		{[]string{"AURORA_ATTACHMENTS_S3_ACCESS_KEY", "ak", "AURORA_ATTACHMENTS_S3_SECRET_KEY", "sk"}, "attachments.s3_url"},
	} {
		t.Run(strings.Join(tc.kv, "="), func(t *testing.T) {
			_, err := load("", nil, registryRoles, env(tc.kv...))
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err %v, want one naming %s", err, tc.key)
			}
		})
	}
	// An empty list set on the struct is refused too.
	c := Default(registryRoles...)
	c.Attachments.Types = nil
	if err := c.Validate(registryRoles); err == nil || !strings.Contains(err.Error(), "attachments.types") {
		t.Fatalf("no types: %v", err)
	}
}
