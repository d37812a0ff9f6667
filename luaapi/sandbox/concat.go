package sandbox

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// The .. operator is one instruction of gopher-lua's VM, which no built-in
// sees and which checks no size: a script doubling a string with s = s .. s
// copies a gigabyte in one instruction, and only the heap watchdog, between
// two instructions, could stop it, seconds over the call's time limit and
// gigabytes over its memory limit. So a sandboxed chunk is compiled with
// every .. rewritten into a call of a host function that checks the result's
// length against the call's Meter (MaxString, then MaxAlloc) before building
// it, exactly as string.rep and table.concat do.
//
// The function reaches the chunk as a local of an enclosing function whose
// name is not a Lua identifier: no source can name, shadow or replace it,
// and reading it is one upvalue access.
const concatLocal = "\x00concat"

// concatKey is where NewState keeps the state's checked concatenation, in
// the registry, which scripts cannot reach.
const concatKey = "\x00sandbox.concat"

// Compile compiles a parsed chunk for a state built by NewState: every ..
// becomes a call of the state's checked concatenation (see above). Run the
// result with Chunk, not lua.NewFunctionFromProto.
//
// The call takes a register or two more than the VM's instruction (one
// for the function called), and a chain nested as the left operand of
// another one more per level: a function near gopher-lua's limit of 200
// registers may no longer compile ("register overflow"), measured against
// stock: 197 to 199 locals and a .., chains of 199 or 200 operands, left
// operands nested 200 deep. No shipped script comes near it.
func Compile(chunk []ast.Stmt, name string) (*lua.FunctionProto, error) {
	rewriteStmts(chunk)
	// local <concatLocal> = ...
	// return function(...) <chunk> end
	bind := &ast.LocalAssignStmt{Names: []string{concatLocal}, Exprs: []ast.Expr{&ast.Comma3Expr{}}}
	body := &ast.FunctionExpr{ParList: &ast.ParList{HasVargs: true}, Stmts: chunk}
	ret := &ast.ReturnStmt{Exprs: []ast.Expr{body}}
	proto, err := lua.Compile([]ast.Stmt{bind, ret}, name)
	if err != nil {
		return nil, err
	}
	nameCalls(proto)
	return proto, nil
}

// concatFrame is how size errors and tracebacks name the checked
// concatenation. gopher-lua names a called function by the expression called, here the
// local concatLocal, whose NUL byte would reach the tracebacks stored with
// model errors (and cut them short in tools that read C strings).
const concatFrame = "concatenation (..)"

// nameCalls renames the calls of concatLocal in proto and the functions
// nested in it for tracebacks.
func nameCalls(proto *lua.FunctionProto) {
	for i := range proto.DbgCalls {
		if proto.DbgCalls[i].Name == concatLocal {
			proto.DbgCalls[i].Name = concatFrame
		}
	}
	for _, p := range proto.FunctionPrototypes {
		nameCalls(p)
	}
}

// Chunk returns the function that runs, in L, a chunk compiled by Compile.
func Chunk(L *lua.LState, proto *lua.FunctionProto) (*lua.LFunction, error) {
	cat, ok := L.G.Registry.RawGetString(concatKey).(*lua.LFunction)
	if !ok {
		return nil, fmt.Errorf("sandbox: %s: the state was not built by sandbox.NewState", proto.SourceName)
	}
	L.Push(L.NewFunctionFromProto(proto))
	L.Push(cat)
	if err := L.PCall(1, 1, nil); err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", proto.SourceName, err)
	}
	fn, ok := L.Get(-1).(*lua.LFunction)
	L.Pop(1)
	if !ok {
		return nil, fmt.Errorf("sandbox: %s was not compiled by sandbox.Compile", proto.SourceName)
	}
	return fn, nil
}

// installConcat puts the state's checked concatenation where Chunk finds
// it.
func installConcat(L *lua.LState, m *Meter) {
	L.G.Registry.RawSetString(concatKey, L.NewFunction(lib{m}.concatOp))
}

// concatOp is a .. chain a .. b .. c with the semantics of the VM's
// OP_CONCAT: from the right, each run of strings and numbers is joined at
// once, and a value of another type takes its __concat metamethod (its own
// first, then the other operand's) with the value to its right. Every
// string built is checked and charged first.
func (b lib) concatOp(L *lua.LState) int {
	n := L.GetTop()
	rhs := L.Get(n)
	if n == 2 {
		// Two strings, the commonest chain: no list of parts.
		x, ok1 := L.Get(1).(lua.LString)
		y, ok2 := rhs.(lua.LString)
		if ok1 && ok2 {
			b.m.String(L, concatFrame, int64(len(x)+len(y)))
			L.Push(x + y)
			return 1
		}
	}
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if lua.LVCanConvToString(lhs) && lua.LVCanConvToString(rhs) {
			// The run of strings and numbers ending at rhs.
			j := i
			for j > 1 && lua.LVCanConvToString(L.Get(j-1)) {
				j--
			}
			// Chains are short: their parts fit on the stack.
			var small [8]string
			parts := small[:0]
			size := 0
			for k := j; k <= i; k++ {
				s := asString(L.Get(k))
				parts = append(parts, s)
				size += len(s)
			}
			last := asString(rhs)
			parts = append(parts, last)
			size += len(last)
			b.m.String(L, concatFrame, int64(size))
			rhs = lua.LString(strings.Join(parts, ""))
			i = j - 1
			continue
		}
		op := L.GetMetaField(lhs, "__concat")
		if op == lua.LNil {
			op = L.GetMetaField(rhs, "__concat")
		}
		if op.Type() != lua.LTFunction {
			// The VM's own words, so that a script's errors read the same.
			L.RaiseError("cannot perform concat operation between %v and %v", lhs.Type().String(), rhs.Type().String())
		}
		L.Push(op)
		L.Push(lhs)
		L.Push(rhs)
		L.Call(2, 1)
		rhs = L.Get(-1)
		L.Pop(1)
		i--
	}
	L.Push(rhs)
	return 1
}

// asString is lua.LVAsString of a string or a number, the VM's rendering,
// with integers below 2^53 formatted by strconv rather than fmt (the same
// digits: gopher-lua prints an integral number as fmt.Sprint(int64(n)),
// exact in that range), as keys such as topic .. ":" .. n want.
func asString(v lua.LValue) string {
	if n, ok := v.(lua.LNumber); ok {
		if f := float64(n); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10)
		}
	}
	return lua.LVAsString(v)
}

// concatCall is the call that replaces the .. chain e: its operands from
// the left, each cut to one value as an operand of .. is.
func concatCall(e *ast.StringConcatOpExpr) ast.Expr {
	var args []ast.Expr
	var cur ast.Expr = e
	for {
		c, ok := cur.(*ast.StringConcatOpExpr)
		if !ok {
			args = append(args, rewriteExpr(cur))
			break
		}
		args = append(args, rewriteExpr(c.Lhs))
		cur = c.Rhs
	}
	for _, a := range args {
		switch a := a.(type) {
		case *ast.FuncCallExpr:
			a.AdjustRet = true
		case *ast.Comma3Expr:
			a.AdjustRet = true
		}
	}
	fn := &ast.IdentExpr{Value: concatLocal}
	fn.SetLine(e.Line())
	// AdjustRet: one value, as .. gives, also after a return (no tail
	// call).
	call := &ast.FuncCallExpr{Func: fn, Args: args, AdjustRet: true}
	call.SetLine(e.Line())
	call.SetLastLine(e.LastLine())
	return call
}

func rewriteStmts(stmts []ast.Stmt) {
	for _, s := range stmts {
		rewriteStmt(s)
	}
}

func rewriteExprs(exprs []ast.Expr) {
	for i, e := range exprs {
		exprs[i] = rewriteExpr(e)
	}
}

func rewriteStmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		rewriteExprs(s.Lhs)
		rewriteExprs(s.Rhs)
	case *ast.LocalAssignStmt:
		rewriteExprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = rewriteExpr(s.Expr)
	case *ast.DoBlockStmt:
		rewriteStmts(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = rewriteExpr(s.Condition)
		rewriteStmts(s.Stmts)
	case *ast.RepeatStmt:
		s.Condition = rewriteExpr(s.Condition)
		rewriteStmts(s.Stmts)
	case *ast.IfStmt:
		s.Condition = rewriteExpr(s.Condition)
		rewriteStmts(s.Then)
		rewriteStmts(s.Else)
	case *ast.NumberForStmt:
		s.Init, s.Limit = rewriteExpr(s.Init), rewriteExpr(s.Limit)
		if s.Step != nil {
			s.Step = rewriteExpr(s.Step)
		}
		rewriteStmts(s.Stmts)
	case *ast.GenericForStmt:
		rewriteExprs(s.Exprs)
		rewriteStmts(s.Stmts)
	case *ast.FuncDefStmt:
		if s.Name != nil {
			s.Name.Func = rewriteExpr(s.Name.Func)
			s.Name.Receiver = rewriteExpr(s.Name.Receiver)
		}
		rewriteStmts(s.Func.Stmts)
	case *ast.ReturnStmt:
		rewriteExprs(s.Exprs)
	}
}

// rewriteExpr returns e with every .. chain in it replaced by concatCall.
func rewriteExpr(e ast.Expr) ast.Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case *ast.StringConcatOpExpr:
		return concatCall(e)
	case *ast.AttrGetExpr:
		e.Object, e.Key = rewriteExpr(e.Object), rewriteExpr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			f.Key, f.Value = rewriteExpr(f.Key), rewriteExpr(f.Value)
		}
	case *ast.FuncCallExpr:
		e.Func, e.Receiver = rewriteExpr(e.Func), rewriteExpr(e.Receiver)
		rewriteExprs(e.Args)
	case *ast.LogicalOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.FunctionExpr:
		rewriteStmts(e.Stmts)
	}
	return e
}
