package models

import (
	"fmt"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"gonum.org/v1/gonum/mat"
)

// The gorgonia definition of the network both classifiers train: fully
// connected layers z = a·Wᵀ + b with ReLU or tanh between them and a
// softmax over the classes. logreg is this network with no hidden layer
// (linear.weight and linear.bias are layer 0), mlp the one with hidden
// layers. The objective is the batch's mean cross-entropy
// + (l2/2)·Σ‖weight‖² + (mu/2)·‖θ − θ₀‖², θ₀ being the weights training
// starts from.
//
// This is the reference model definition: autodiff gives its gradient with
// nothing written by hand. Training does not run it. The hand-written
// gonum kernel (mlpNet.gradient) computes the same gradient several times
// faster at the sizes sites train on (the Train benchmarks in
// bench_test.go measure both in one run), and graph_net_test.go checks the
// two agree to 1e-9 for every layer layout and activation. A change to the
// objective goes here first, then into the kernel, and the test holds them
// together.

// graphMu serializes building gorgonia graphs: gorgonia shares constant
// nodes between graphs and caches their hash codes lazily, so two graphs
// built at once race (seen with three in-process sites under -race).
// Running built machines concurrently is safe; only construction is
// serialized.
var graphMu sync.Mutex

// graphNet is one compiled graph and tape machine for a fixed layer layout
// and batch size. Compiling costs far more than running a step, so a
// graphNet is built once and reused for every batch, and, by loading new
// weights, for any number of training runs. One goroutine uses it at a
// time.
//
// A partial batch reuses the same graph: unused rows are zero-filled and
// get example weight 0, and real rows get weight 1/m, so the loss and its
// gradient are exactly the mean over the m real rows.
type graphNet struct {
	batch int
	sizes []int // widths, input to output

	x, yOneHot, exWeight *G.Node   // inputs: [B,F], [B,K], [B]
	params               []*G.Node // layer l's weight at 2l, its bias at 2l+1, as the optimizer numbers them
	anchors              []*G.Node // θ₀ per parameter, inputs; nil without a proximal term
	ceVal                G.Value   // cross-entropy, read out of the graph
	vm                   G.VM

	xBuf, yBuf, exBuf []float64
	xT, yT, exT       *tensor.Dense
}

// newGraphNet builds and compiles the network of the given widths (input
// to output) for batches of up to batch rows, with zero weights; load sets
// them.
func newGraphNet(sizes []int, tanh bool, batch int, l2, mu float64) (gn *graphNet, err error) {
	// Gorgonia reports many shape and type problems by panicking; turn
	// those into errors. Ops executed inside RunAll are not covered: the
	// tape machine runs them on a goroutine of its own with no recover,
	// which is why callers validate every shape and label first.
	defer func() {
		if r := recover(); r != nil {
			gn, err = nil, fmt.Errorf("gorgonia panicked: %v", r)
		}
	}()
	graphMu.Lock()
	defer graphMu.Unlock()

	f, k := sizes[0], sizes[len(sizes)-1]
	gn = &graphNet{batch: batch, sizes: sizes}
	g := G.NewGraph()

	gn.xBuf = make([]float64, batch*f)
	gn.yBuf = make([]float64, batch*k)
	gn.exBuf = make([]float64, batch)
	gn.xT = tensor.New(tensor.WithShape(batch, f), tensor.WithBacking(gn.xBuf))
	gn.yT = tensor.New(tensor.WithShape(batch, k), tensor.WithBacking(gn.yBuf))
	gn.exT = tensor.New(tensor.WithShape(batch), tensor.WithBacking(gn.exBuf))
	gn.x = G.NewMatrix(g, tensor.Float64, G.WithShape(batch, f), G.WithName("x"), G.WithValue(gn.xT))
	gn.yOneHot = G.NewMatrix(g, tensor.Float64, G.WithShape(batch, k), G.WithName("y"), G.WithValue(gn.yT))
	gn.exWeight = G.NewVector(g, tensor.Float64, G.WithShape(batch), G.WithName("example_weight"), G.WithValue(gn.exT))

	param := func(name string, shape ...int) *G.Node {
		v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(make([]float64, tensor.Shape(shape).TotalSize())))
		return G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
	}
	a := gn.x
	for l := range len(sizes) - 1 {
		in, out := sizes[l], sizes[l+1]
		w, b := param(mlpWeightName(l), out, in), param(mlpBiasName(l), out)
		gn.params = append(gn.params, w, b)
		wT, err := G.Transpose(w)
		if err != nil {
			return nil, fmt.Errorf("layer %d: transposing weight: %w", l, err)
		}
		xw, err := G.Mul(a, wT)
		if err != nil {
			return nil, fmt.Errorf("layer %d: multiplying by weight: %w", l, err)
		}
		if a, err = G.BroadcastAdd(xw, b, nil, []byte{0}); err != nil {
			return nil, fmt.Errorf("layer %d: adding bias: %w", l, err)
		}
		if l == len(sizes)-2 {
			break
		}
		if tanh {
			a, err = G.Tanh(a)
		} else {
			a, err = G.Rectify(a)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: activation: %w", l, err)
		}
	}

	// LogSoftMax is gorgonia's numerically stable fused op; the axis is
	// explicit because its backward pass does not resolve a default axis.
	logp, err := G.LogSoftMax(a, 1)
	if err != nil {
		return nil, fmt.Errorf("log-softmax: %w", err)
	}
	picked, err := G.HadamardProd(gn.yOneHot, logp)
	if err != nil {
		return nil, fmt.Errorf("selecting true-class log-probabilities: %w", err)
	}
	rowLogp, err := G.Sum(picked, 1)
	if err != nil {
		return nil, fmt.Errorf("summing rows: %w", err)
	}
	// Vector·vector is an inner product: the example-weighted sum.
	weighted, err := G.Mul(rowLogp, gn.exWeight)
	if err != nil {
		return nil, fmt.Errorf("weighting examples: %w", err)
	}
	ce, err := G.Neg(weighted)
	if err != nil {
		return nil, fmt.Errorf("negating: %w", err)
	}
	// Read copies the value out during the run; an intermediate node's own
	// value may live in a register that the tape machine reuses.
	G.Read(ce, &gn.ceVal)

	// penalty returns (c/2)·Σ over ps of ‖p − ref‖² (ref nil: ‖p‖²).
	penalty := func(c float64, ps, refs []*G.Node) (*G.Node, error) {
		var total *G.Node
		for i, p := range ps {
			d := p
			if refs != nil {
				if d, err = G.Sub(p, refs[i]); err != nil {
					return nil, err
				}
			}
			sq, err := G.Square(d)
			if err != nil {
				return nil, err
			}
			ss, err := G.Sum(sq)
			if err != nil {
				return nil, err
			}
			if total == nil {
				total = ss
			} else if total, err = G.Add(total, ss); err != nil {
				return nil, err
			}
		}
		return G.Mul(total, G.NewConstant(0.5*c))
	}
	objective := ce
	if l2 > 0 {
		var weights []*G.Node
		for i := 0; i < len(gn.params); i += 2 {
			weights = append(weights, gn.params[i])
		}
		p, err := penalty(l2, weights, nil)
		if err != nil {
			return nil, fmt.Errorf("l2 penalty: %w", err)
		}
		if objective, err = G.Add(objective, p); err != nil {
			return nil, fmt.Errorf("adding l2 penalty: %w", err)
		}
	}
	if mu > 0 {
		for _, p := range gn.params {
			shape := p.Shape().Clone()
			v := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(make([]float64, shape.TotalSize())))
			gn.anchors = append(gn.anchors, G.NewTensor(g, tensor.Float64, shape.Dims(), G.WithShape(shape...),
				G.WithName(p.Name()+".anchor"), G.WithValue(v)))
		}
		p, err := penalty(mu, gn.params, gn.anchors)
		if err != nil {
			return nil, fmt.Errorf("proximal term: %w", err)
		}
		if objective, err = G.Add(objective, p); err != nil {
			return nil, fmt.Errorf("adding proximal term: %w", err)
		}
	}
	if _, err := G.Grad(objective, gn.params...); err != nil {
		return nil, fmt.Errorf("differentiating: %w", err)
	}
	gn.vm = G.NewTapeMachine(g, G.BindDualValues(gn.params...))
	return gn, nil
}

// Close releases the tape machine.
func (gn *graphNet) Close() error { return gn.vm.Close() }

// load copies net's parameters into the graph, and anchor's into θ₀ when
// the graph has a proximal term (anchor is unused otherwise), and clears
// any gradient a previous run left behind.
func (gn *graphNet) load(net, anchor *mlpNet) error {
	for i, p := range gn.params {
		src := netParam(net, i)
		dst, err := float64Data(p.Value(), len(src))
		if err != nil {
			return fmt.Errorf("loading %s: %w", p.Name(), err)
		}
		copy(dst, src)
		// Before the first run there is no gradient value yet, and
		// nothing to clear.
		if gd, err := gn.grad(i); err == nil {
			clear(gd)
		}
		if gn.anchors != nil {
			ref, err := float64Data(gn.anchors[i].Value(), len(src))
			if err != nil {
				return fmt.Errorf("loading θ₀ of %s: %w", p.Name(), err)
			}
			copy(ref, netParam(anchor, i))
		}
	}
	return nil
}

// store copies the graph's parameters into net.
func (gn *graphNet) store(net *mlpNet) error {
	for i, p := range gn.params {
		dst := netParam(net, i)
		src, err := float64Data(p.Value(), len(dst))
		if err != nil {
			return fmt.Errorf("reading %s: %w", p.Name(), err)
		}
		copy(dst, src)
	}
	return nil
}

// netParam is net's parameter i in the optimizer's numbering.
func netParam(net *mlpNet, i int) []float64 {
	if i%2 == 0 {
		return net.w[i/2].RawMatrix().Data
	}
	return net.b[i/2]
}

// grad returns parameter i's gradient buffer, which the tape machine adds
// into on every run.
func (gn *graphNet) grad(i int) ([]float64, error) {
	p := gn.params[i]
	g, err := p.Grad()
	if err != nil {
		return nil, fmt.Errorf("reading gradient of %s: %w", p.Name(), err)
	}
	return float64Data(g, p.Shape().TotalSize())
}

// gradient runs forward and backward on the given rows of X (at most
// batch) and returns their mean cross-entropy; the gradient is left in the
// parameters' gradient buffers for step.
func (gn *graphNet) gradient(X *mat.Dense, y []int, rows []int) (float64, error) {
	f, k := gn.sizes[0], gn.sizes[len(gn.sizes)-1]
	clear(gn.yBuf)
	clear(gn.exBuf)
	inv := 1 / float64(len(rows))
	for i, r := range rows {
		copy(gn.xBuf[i*f:(i+1)*f], X.RawRowView(r))
		gn.yBuf[i*k+y[r]] = 1
		gn.exBuf[i] = inv
	}
	clear(gn.xBuf[len(rows)*f:])
	for _, in := range []struct {
		n *G.Node
		v *tensor.Dense
	}{{gn.x, gn.xT}, {gn.yOneHot, gn.yT}, {gn.exWeight, gn.exT}} {
		if err := G.Let(in.n, in.v); err != nil {
			return 0, fmt.Errorf("binding %s: %w", in.n.Name(), err)
		}
	}
	defer gn.vm.Reset()
	if err := gn.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("running graph: %w", err)
	}
	ce, ok := gn.ceVal.Data().(float64)
	if !ok {
		return 0, fmt.Errorf("loss has type %T, want float64", gn.ceVal.Data())
	}
	return ce, nil
}

// step applies opt's rule with the gradient from the last run, in place in
// the parameter nodes' own values (as gorgonia's solvers do) so the next
// run sees it without rebinding, and clears the gradient: the tape machine
// adds into bound gradients on every run and Reset does not clear them.
func (gn *graphNet) step(opt *optimizer) error {
	opt.begin()
	for i, p := range gn.params {
		data, err := float64Data(p.Value(), p.Shape().TotalSize())
		if err != nil {
			return fmt.Errorf("reading %s: %w", p.Name(), err)
		}
		gd, err := gn.grad(i)
		if err != nil {
			return err
		}
		if opt.plain() {
			for j, v := range gd {
				data[j] -= opt.lr * v
			}
		} else {
			opt.update(i, data, gd)
		}
		clear(gd)
	}
	return nil
}

// float64Data returns v's backing slice, checking type and length so a
// gorgonia layout surprise becomes an error rather than a wrong model.
func float64Data(v G.Value, want int) ([]float64, error) {
	if v == nil {
		return nil, fmt.Errorf("no value")
	}
	d, ok := v.Data().([]float64)
	if !ok || len(d) != want {
		return nil, fmt.Errorf("value has layout %T with %d elements, want []float64 with %d", v.Data(), v.Shape().TotalSize(), want)
	}
	return d, nil
}
