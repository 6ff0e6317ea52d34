package analyzer

import "fmt"

// Grades in order; Bands[i] is the upper bound (seconds of latency increase
// under load) of Grades[i]; above the last band the grade is F.
var Grades = []string{"A+", "A", "B", "C", "D", "F"}

// DefaultBloatBands are DSLReports' bands (also LibreQoS'): < 5, 30, 60, 200, 400 ms.
var DefaultBloatBands = []float64{0.005, 0.030, 0.060, 0.200, 0.400}

// BloatGrade grades the latency increase under load. The exporter reports
// the worse of download and upload, so the grade is the worst direction's.
type BloatGrade struct {
	Node     string  `json:"node"`
	Increase float64 `json:"latency_increase_seconds"`
	Grade    string  `json:"grade"`
	Numeric  int     `json:"grade_numeric"` // 0 = A+ … 5 = F
}

func gradeBloat(inc float64, bands []float64) (string, int) {
	for i, b := range bands {
		if inc < b {
			return Grades[i], i
		}
	}
	return Grades[len(Grades)-1], len(Grades) - 1
}

// ParseBands checks a configured band list.
func ParseBands(b []float64) error {
	if len(b) != len(Grades)-1 {
		return fmt.Errorf("bufferbloat bands: want %d ascending bounds (A+ A B C D), got %d", len(Grades)-1, len(b))
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			return fmt.Errorf("bufferbloat bands: %g is not above %g", b[i], b[i-1])
		}
	}
	return nil
}
