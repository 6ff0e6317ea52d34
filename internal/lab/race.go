//go:build race

package lab

// The race detector slows code five- to tenfold and unevenly: a timing bound
// judged under it measures the detector, not the code.
const raceDetector = true
