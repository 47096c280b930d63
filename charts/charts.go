// Package charts holds Aurora's Helm chart (charts/aurora) and, in its
// tests, renders it offline with Helm's Go library, lints it, and checks
// every rendered object against the Kubernetes API types.
package charts
