%% diff_harness -- runs scripted scenarios against OTP's real `supervisor`
%% and prints one trace per scenario, so that trio_smith's Python
%% supervisor core can be compared with OTP trace for trace.
%%
%% This one module plays three roles:
%%
%%   * the harness:            main/1 (erl -noshell -run diff_harness main In Out)
%%   * the supervisor callback: init/1
%%   * the child module:        start_child/2, the start function of every child
%%
%% Input:  a file of Erlang terms (file:consult/1), one map per scenario, with
%%         binary keys and binary strings (written by tests/otp/oracle.py).
%% Output: one line of JSON per scenario (a list of trace entries), built by
%%         hand because OTP 25 has no json module.  Entries only contain
%%         binaries (strings), integers and lists.
%%
%% Processes of one scenario:
%%
%%   runner      runs the steps; it calls supervisor:start_link/2, so it is the
%%               supervisor's parent, and it traps exits.
%%   recorder    owns the trace and the scripted start outcomes.  Every trace
%%               entry is appended by a *synchronous* call to it, from the
%%               runner, from the supervisor (start function, reply hook) or
%%               from a child (its "stop" entry, recorded before it exits).
%%               Since these processes only act in a causal chain (the
%%               supervisor waits for a child's DOWN, the runner waits for the
%%               supervisor), the order of the trace is deterministic.
%%   supervisor  a stock OTP 25 supervisor with this module as callback.  A
%%               sys debug hook is installed in it that records the entry of
%%               an API call at the moment the supervisor sends the reply
%%               (before it can go on with, e.g., a queued try_again_restart).
%%   children    plain processes that trap exits (see child_init/3).
%%
%% Supervisor mailbox discipline:
%%
%%   After every step the runner *settles* the supervisor: it waits until
%%   the supervisor is idle with an empty mailbox (so it has also handled the
%%   try_again_restart casts it sends itself after a failed restart) and has
%%   taken in the exit signals of all dead children; see probe/1.  The one
%%   exception is an "exit" step with settle = false.  Then the
%%   supervisor is left suspended (sys:suspend/1) with the child's 'EXIT'
%%   in its queue ("pending"), and whatever the following steps send it is
%%   queued *behind* that 'EXIT', before anything the supervisor does in
%%   reaction to it.  So a call made right after an unsettled exit is served
%%   after the first restart attempt and before its retry (OTP's
%%   try_again_restart is a cast to self).  In detail, while pending:
%%
%%     script          changes the outcome queue; still pending.
%%     exit            the victim is looked up in the supervisor's *internal*
%%                     state (sys:get_state/1 works while suspended): it is
%%                     running iff that state holds a live pid for it.  Its
%%                     'EXIT' is queued too.  settle = false: still pending;
%%                     settle = true: resume, then settle.
%%     API, which,     the request is queued, then the supervisor is resumed;
%%     count           after the reply, settle.  Should the supervisor die
%%                     before replying, the result is "sup_down" (the entry
%%                     of which/count is then ["which"|"count", "sup_down"]).
%%     stop            the parent's exit signal is queued (behind the pending
%%                     'EXIT's) and the supervisor resumed, atomically.
%%     end of steps    resume, then settle (pending work is never dropped).
%%
%% Pool scenarios ("strategy": "simple_one_for_one"):
%%
%%   The supervisor has one child spec, the template: id <<"template">>,
%%   start {?MODULE, start_pool_child, [Rec]}, restart from the scenario's
%%   "template".  A start_child step names the new child's id and calls
%%   supervisor:start_child(Sup, [Id]), so OTP starts it with
%%   start_pool_child(Rec, Id).  OTP 25 knows dynamic children by pid only;
%%   the recorder maps ids to pids (every start function reports the pid it
%%   started), and:
%%
%%     exit            finds the id's latest pid; running iff it is alive.
%%     terminate_child terminates the id's latest pid, or a dead pid if the id
%%                     never ran (OTP then answers ok, as for any dead pid).
%%     which           the reply (ids undefined, restarting ones without a
%%                     pid) is rebuilt from the supervisor's own state at the
%%                     moment of the reply (its dynamics: Pid or
%%                     {restarting, OldPid} => Args), ids from the pid map,
%%                     sorted by id (scenario ids are zero-padded, so this is
%%                     start order).
%%     count           OTP's reply as it is (specs = 1).
%%
%%   restart_child and delete_child are not offered (OTP answers
%%   {error, simple_one_for_one}).  OTP stops the children of a pool at its
%%   shutdown all at once, in no defined order: each run of consecutive
%%   "stop" entries of a pool trace is written in reverse id order (reverse
%%   start order).
-module(diff_harness).
-behaviour(supervisor).

%% Harness entry point.
-export([main/1]).
%% Supervisor callback.
-export([init/1]).
%% Child start functions: {diff_harness, start_child, [Id, Recorder]}, and
%% start_pool_child(Recorder, Id) for the template of a pool.
-export([start_child/2, start_pool_child/2]).

%% A scenario that takes longer than this is a harness bug: give up.
-define(SCENARIO_TIMEOUT, 30000).

%% Positions in OTP 25's supervisor records (stdlib-4.x, supervisor.erl):
%% #state.children = {Ids, #{Id => #child{}}}, #child.pid.
-define(STATE_CHILDREN, 4).
-define(CHILD_PID, 2).
%% #state.dynamics of a simple_one_for_one supervisor:
%% {maps | mapsets, #{Pid | {restarting, Pid} => Args}}.
-define(STATE_DYNAMICS, 5).

%%%===================================================================
%%% Entry point
%%%===================================================================

%% @doc Run every scenario of InFile, write one JSON line per scenario to
%% OutFile, then halt (status 0, or 2 on any harness error).
main([InFile, OutFile]) ->
    %% Supervisor reports (child_terminated, start_error, ...) are expected
    %% by the hundreds; keep stdout/stderr for real harness errors.
    ok = logger:set_primary_config(level, none),
    Status =
        try
            {ok, Scenarios} = file:consult(InFile),
            Numbered = lists:zip(lists:seq(0, length(Scenarios) - 1), Scenarios),
            Lines = [[json(run_scenario(N, S)), $\n] || {N, S} <- Numbered],
            ok = file:write_file(OutFile, Lines),
            0
        catch
            Class:Reason:Stack ->
                io:format(standard_error, "diff_harness failed: ~tp:~tp~n~tp~n",
                          [Class, Reason, Stack]),
                2
        end,
    erlang:halt(Status, [{flush, true}]).

%% Run one scenario in a fresh runner process (fresh mailbox, fresh
%% recorder), so that nothing leaks from one scenario to the next.
run_scenario(N, Scenario) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() -> Self ! {trace, self(), scenario(Scenario)} end),
    receive
        {trace, Pid, Trace} ->
            erlang:demonitor(Mon, [flush]),
            Trace;
        {'DOWN', Mon, process, Pid, Reason} ->
            error({scenario_crashed, N, Reason})
    after ?SCENARIO_TIMEOUT ->
        exit(Pid, kill),
        error({scenario_timeout, N})
    end.

%%%===================================================================
%%% One scenario (runs in the runner process)
%%%===================================================================

scenario(S) ->
    process_flag(trap_exit, true),
    Rec = spawn_link(fun() -> recorder([], #{}, none) end),
    maps:foreach(fun(Id, Outcomes) -> ok = rec_call(Rec, {script, Id, Outcomes}) end,
                 maps:get(<<"starts">>, S, #{})),
    Flags = sup_flags(S),
    Pool = maps:get(<<"strategy">>, S, undefined) =:= <<"simple_one_for_one">>,
    Specs = case Pool of
                true -> [pool_template(maps:get(<<"template">>, S, #{}), Rec)];
                false -> [child_spec(C, Rec) || C <- maps:get(<<"children">>, S, [])]
            end,
    case supervisor:start_link(?MODULE, {Flags, Specs}) of
        {ok, Sup} ->
            Mon = monitor(process, Sup),
            Runner = self(),
            %% The {FuncId, Func, FuncState} form: with {Func, FuncState},
            %% sys would mistake a 2-tuple FuncState for {Func, FuncState}.
            HookState = case Pool of
                            true -> {Runner, Rec, pool};
                            false -> {Runner, Rec}
                        end,
            ok = sys:install(Sup, {reply_hook, fun reply_hook/3, HookState}),
            Ctx = #{sup => Sup, mon => Mon, rec => Rec, pending => false, pool => Pool},
            case run_steps(maps:get(<<"steps">>, S, []), Ctx) of
                {ok, _} ->
                    %% Still alive: get rid of it without recording anything.
                    %% Its children trap exits and die with reason killed.
                    unlink(Sup),
                    exit(Sup, kill),
                    receive {'DOWN', Mon, process, Sup, _} -> ok end;
                {dead, Reason} ->
                    record(Rec, [<<"sup_exit">>, exit_text(Reason)])
            end;
        {error, {shutdown, {failed_to_start_child, Id, _}}} ->
            record(Rec, [<<"sup_start_failed">>, Id]);
        Other ->
            %% {error, Reason} (bad flags, bad child specs, ...).
            Text = case Other of
                       {error, R} -> text(R);
                       _ -> text(Other)
                   end,
            record(Rec, [<<"sup_start_error">>, Text])
    end,
    Trace = case Pool of
                true -> sort_stop_runs(rec_call(Rec, trace));
                false -> rec_call(Rec, trace)
            end,
    unlink(Rec),
    exit(Rec, kill),
    Trace.

%% A pool's children are stopped at once (terminate_dynamic_children): the
%% order in which they record their "stop" is the scheduler's.  Each run of
%% consecutive "stop" entries is written in reverse id order.
sort_stop_runs(Trace) ->
    sort_stop_runs(Trace, [], []).

sort_stop_runs([[<<"stop">>, _] = E | Rest], Run, Acc) ->
    sort_stop_runs(Rest, [E | Run], Acc);
sort_stop_runs([E | Rest], Run, Acc) ->
    sort_stop_runs(Rest, [], [E | flush_run(Run, Acc)]);
sort_stop_runs([], Run, Acc) ->
    lists:reverse(flush_run(Run, Acc)).

flush_run(Run, Acc) ->
    %% Acc is reversed: prepend the run in ascending order.
    lists:sort(Run) ++ Acc.

sup_flags(S) ->
    Keys = [{<<"strategy">>, strategy, fun erlang:binary_to_atom/1},
            {<<"intensity">>, intensity, fun id/1},
            {<<"period">>, period, fun id/1},
            {<<"auto_shutdown">>, auto_shutdown, fun erlang:binary_to_atom/1}],
    maps:from_list([{Key, Conv(V)} || {Name, Key, Conv} <- Keys,
                                      {ok, V} <- [maps:find(Name, S)]]).

%% Every child: shutdown 5000, worker, start {?MODULE, start_child, [Id, Rec]}.
%% restart and significant are only set when the scenario gives them.
child_spec(C, Rec) ->
    Id = maps:get(<<"id">>, C),
    Base = #{id => Id,
             start => {?MODULE, start_child, [Id, Rec]},
             shutdown => 5000,
             type => worker},
    Opts = [{restart, binary_to_atom(R)} || {ok, R} <- [maps:find(<<"restart">>, C)]]
        ++ [{significant, B} || {ok, B} <- [maps:find(<<"significant">>, C)]],
    maps:merge(Base, maps:from_list(Opts)).

%% The template of a pool: the start arguments are [Rec] ++ [Id].
pool_template(T, Rec) ->
    Base = #{id => <<"template">>,
             start => {?MODULE, start_pool_child, [Rec]},
             shutdown => 5000,
             type => worker},
    Opts = [{restart, binary_to_atom(R)} || {ok, R} <- [maps:find(<<"restart">>, T)]]
        ++ [{significant, B} || {ok, B} <- [maps:find(<<"significant">>, T)]],
    maps:merge(Base, maps:from_list(Opts)).

id(X) -> X.

%%%===================================================================
%%% Steps
%%%===================================================================

%% Ctx: #{sup, mon, rec, pending :: boolean(), pool :: boolean()}.
%% Returns {ok, Ctx} (supervisor alive) or {dead, ExitReason}.
run_steps([], Ctx) ->
    release_and_settle(Ctx);
run_steps([Step | Rest], Ctx) ->
    case step(maps:get(<<"op">>, Step), Step, Ctx) of
        {ok, Ctx1} -> run_steps(Rest, Ctx1);
        {dead, Reason} -> {dead, Reason}
    end.

step(<<"exit">>, Step, Ctx) ->
    Id = maps:get(<<"id">>, Step),
    ReasonBin = maps:get(<<"reason">>, Step),
    Settle = maps:get(<<"settle">>, Step, true),
    case running_pid(Id, Ctx) of
        none ->
            record(Ctx, [<<"exit_skipped">>, Id]),
            after_exit(Settle, Ctx);
        {ok, Pid} ->
            record(Ctx, [<<"exit">>, Id, ReasonBin]),
            %% Unsettled: freeze the supervisor *before* the child dies, so
            %% that it cannot react to the 'EXIT' before the next step.
            Ctx1 = case Settle of
                       true -> Ctx;
                       false -> suspend(Ctx)
                   end,
            kill_child(Pid, binary_to_atom(ReasonBin), Ctx1),
            after_exit(Settle, Ctx1)
    end;
step(<<"script">>, Step, #{rec := Rec} = Ctx) ->
    ok = rec_call(Rec, {script, maps:get(<<"id">>, Step), maps:get(<<"outcomes">>, Step)}),
    {ok, Ctx};
step(<<"start_child">> = Op, Step, #{pool := true} = Ctx) ->
    Id = maps:get(<<"id">>, maps:get(<<"child">>, Step)),
    api(fun(R) -> [<<"api">>, Op, Id, api_result(R)] end,
        {start_child, [Id]}, Ctx);
step(<<"terminate_child">> = Op, Step, #{pool := true, rec := Rec} = Ctx) ->
    Id = maps:get(<<"id">>, Step),
    Pid = case rec_call(Rec, {pid_of, Id}) of
              undefined -> dead_pid();
              P -> P
          end,
    api(fun(R) -> [<<"api">>, Op, Id, api_result(R)] end,
        {terminate_child, Pid}, Ctx);
step(<<"which_children">>, _Step, #{pool := true} = Ctx) ->
    %% reply_hook/3 has replaced the reply by {pool_which, Rows}.
    api(fun(sup_down) -> [<<"which">>, <<"sup_down">>];
           ({reply, {pool_which, Rows}}) -> [<<"which">>, Rows]
        end, which_children, Ctx);
step(<<"start_child">> = Op, Step, #{rec := Rec} = Ctx) ->
    C = maps:get(<<"child">>, Step),
    Id = maps:get(<<"id">>, C),
    api(fun(R) -> [<<"api">>, Op, Id, api_result(R)] end,
        {start_child, child_spec(C, Rec)}, Ctx);
step(Op, Step, Ctx) when Op =:= <<"restart_child">>;
                         Op =:= <<"terminate_child">>;
                         Op =:= <<"delete_child">> ->
    Id = maps:get(<<"id">>, Step),
    api(fun(R) -> [<<"api">>, Op, Id, api_result(R)] end,
        {binary_to_atom(Op), Id}, Ctx);
step(<<"which_children">>, _Step, Ctx) ->
    api(fun(sup_down) -> [<<"which">>, <<"sup_down">>];
           ({reply, L}) -> [<<"which">>, [[Id, child_state(P)] || {Id, P, _, _} <- lists:reverse(L)]]
        end, which_children, Ctx);
step(<<"count_children">>, _Step, Ctx) ->
    api(fun(sup_down) -> [<<"count">>, <<"sup_down">>];
           ({reply, L}) -> [<<"count">> | [proplists:get_value(K, L)
                                            || K <- [specs, active, supervisors, workers]]]
        end, count_children, Ctx);
step(<<"stop">>, _Step, #{sup := Sup} = Ctx) ->
    %% Stop it as its parent does.  The runner is the parent.
    case Ctx of
        #{pending := true} ->
            %% Queue "resume" and then the parent's exit signal behind the
            %% pending 'EXIT's while the supervisor cannot run at all (a
            %% sys-suspended process would act on a parent 'EXIT' at once).
            true = erlang:suspend_process(Sup),
            Sup ! {system, {self(), make_ref()}, resume},
            exit(Sup, shutdown),
            true = erlang:resume_process(Sup);
        #{pending := false} ->
            exit(Sup, shutdown)
    end,
    {dead, await_down(Ctx)};
step(Op, Step, _Ctx) ->
    error({unknown_step, Op, Step}).

after_exit(true, Ctx) -> release_and_settle(Ctx);
after_exit(false, Ctx) -> {ok, Ctx}.

%% An API call (or which/count).  Entry is a fun from the outcome,
%% {reply, Reply} | sup_down, to the trace entry.  On a reply, the entry is
%% recorded by reply_hook/3 inside the supervisor, right after it sent the
%% reply, so that it lands before anything the supervisor does next.
api(Entry, Request, Ctx) ->
    case call_sup(Request, Entry, Ctx) of
        {{reply, _}, Ctx1} ->
            settle(Ctx1);
        {sup_down, Ctx1} ->
            %% The supervisor died before replying.
            record(Ctx1, Entry(sup_down)),
            settle(Ctx1)
    end.

%% Every request of the runner to the supervisor goes through here.  If the
%% supervisor is pending (suspended), the request is queued before it is
%% resumed.  Returns {{reply, Reply} | sup_down, Ctx}, once reply_hook/3 has
%% handed the reply to the recorder (Entry({reply, Reply}) is appended unless
%% it is skip), so a late hook can never mix up two requests.
call_sup(Request, Entry, #{sup := Sup, rec := Rec} = Ctx) ->
    ok = rec_call(Rec, {expect_reply, Entry}),
    ReqId = gen_server:send_request(Sup, Request),
    Ctx1 = release(Ctx),
    case gen_server:receive_response(ReqId, infinity) of
        {reply, Reply} ->
            done = rec_call(Rec, await_reply_recorded),
            {{reply, Reply}, Ctx1};
        {error, _} ->
            ok = rec_call(Rec, cancel_expect),
            {sup_down, Ctx1}
    end.

%% sys debug hook, runs in the supervisor process.  Records the entry of
%% the runner's API call right after the supervisor has sent its reply.
reply_hook({Runner, Rec} = St, {out, Reply, {Runner, _Tag}, _State}, _Name) ->
    ok = rec_call(Rec, {reply_sent, Reply}),
    St;
reply_hook({Runner, Rec, pool} = St, {out, Reply, {Runner, _Tag}, State}, _Name) ->
    ok = rec_call(Rec, {reply_sent, pool_reply(Reply, State, Rec)}),
    St;
reply_hook(St, _Event, _Name) ->
    St.

%% Result normalisation for start/restart/terminate/delete_child.
api_result(sup_down) -> <<"sup_down">>;
api_result({reply, R}) -> norm(R).

norm(ok) -> <<"ok">>;
norm({ok, undefined}) -> <<"ok_undefined">>;
norm({ok, Pid}) when is_pid(Pid) -> <<"ok">>;
norm({ok, Pid, _}) when is_pid(Pid) -> <<"ok">>;
norm({error, not_found}) -> <<"not_found">>;
norm({error, running}) -> <<"running">>;
norm({error, restarting}) -> <<"restarting">>;
norm({error, already_present}) -> <<"already_present">>;
norm({error, {already_started, _}}) -> <<"already_started">>;
norm({error, {bad_combination, _}}) -> <<"bad_combination">>;
norm({error, {scripted, _ChildRecord}}) -> <<"start_failed">>;  % start_child
norm({error, scripted}) -> <<"start_failed">>;                  % restart_child
norm(Other) -> text(Other).

%% A pool's which_children reply ({undefined, Pid | restarting, worker,
%% Mods} per child) with the ids put back, from the supervisor's state.
pool_reply(Reply, State, Rec) when is_list(Reply) ->
    case lists:all(fun(E) -> is_tuple(E) andalso element(1, E) =:= undefined end, Reply) of
        true ->
            state = element(1, State),
            {_Kind, Db} = element(?STATE_DYNAMICS, State),
            Rows = [case Key of
                        {restarting, Pid} -> [id_of(Rec, Pid), <<"restarting">>];
                        Pid when is_pid(Pid) -> [id_of(Rec, Pid), <<"running">>]
                    end || Key <- maps:keys(Db)],
            length(Rows) =:= length(Reply) orelse error({which_mismatch, Reply, Db}),
            {pool_which, lists:sort(Rows)};
        false ->
            Reply
    end;
pool_reply(Reply, _State, _Rec) ->
    Reply.

id_of(Rec, Pid) ->
    case rec_call(Rec, {id_of, Pid}) of
        undefined -> error({unknown_child_pid, Pid});
        Id -> Id
    end.

%% A pid that is certainly dead.
dead_pid() ->
    {Pid, Mon} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', Mon, process, Pid, _} -> Pid end.

child_state(Pid) when is_pid(Pid) -> <<"running">>;
child_state(restarting) -> <<"restarting">>;
child_state(undefined) -> <<"undefined">>.

%% {ok, Pid} if child Id is running, else none.
running_pid(Id, #{pool := true, rec := Rec}) ->
    %% A live pool child is always held by the supervisor (settled or not):
    %% the id's latest pid, if it is alive.
    case rec_call(Rec, {pid_of, Id}) of
        undefined -> none;
        Pid -> alive(Pid)
    end;
running_pid(Id, #{pending := false} = Ctx) ->
    %% Settled: ask the supervisor the official way.
    case call_sup(which_children, fun(_) -> skip end, Ctx) of
        {{reply, Children}, _} ->
            case lists:keyfind(Id, 1, Children) of
                {Id, Pid, _, _} when is_pid(Pid) -> alive(Pid);
                _ -> none
            end;
        {sup_down, _} ->
            none
    end;
running_pid(Id, #{pending := true, sup := Sup}) ->
    %% Suspended: which_children would only be served after the queued
    %% 'EXIT's, so read the supervisor's internal state (OTP 25 layout).
    State = sys:get_state(Sup, infinity),
    state = element(1, State),
    {_Ids, Db} = element(?STATE_CHILDREN, State),
    case maps:find(Id, Db) of
        {ok, Child} ->
            child = element(1, Child),
            case element(?CHILD_PID, Child) of
                Pid when is_pid(Pid) -> alive(Pid);
                _ -> none
            end;
        error ->
            none
    end.

alive(Pid) ->
    case is_process_alive(Pid) of
        true -> {ok, Pid};
        false -> none
    end.

%% Make a child exit with Reason; return once the supervisor has taken in
%% the child's exit signal (it is then an 'EXIT' message in its queue).
kill_child(Pid, Reason, Ctx) ->
    Mon = monitor(process, Pid),
    Pid ! {die, Reason},
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    wait_no_dead_links(Ctx).

wait_no_dead_links(#{sup := Sup} = Ctx) ->
    case probe(Sup) of
        {_QueueLen, []} -> ok;
        {_QueueLen, _DeadLinks} -> erlang:yield(), wait_no_dead_links(Ctx);
        dead -> ok
    end.

%% Look at the supervisor from the inside: returns {QueueLen, DeadLinks},
%% or dead.  The fun runs in the supervisor process while it serves a system
%% message (also while it is sys-suspended), so the supervisor is not busy
%% with anything else: QueueLen = 0 means it is idle with an empty mailbox
%% (looking at message_queue_len from outside is not enough: it is also 0
%% while the supervisor is busy with the last message it took, e.g. a
%% try_again_restart).  DeadLinks are linked processes that are dead but
%% whose exit signal the supervisor has not taken in yet.
probe(Sup) ->
    Self = self(),
    Ref = make_ref(),
    Probe = fun(State) ->
                    %% First take in every signal sent to it so far: without
                    %% this, message_queue_len was seen to miss a message
                    %% still among unprocessed signals (a try_again_restart
                    %% cast to itself: about one scenario run in 3000 settled
                    %% too early, OTP 25.2).  Ref is never sent to it.
                    receive Ref -> error(unexpected_probe_ref) after 0 -> ok end,
                    {message_queue_len, N} = process_info(self(), message_queue_len),
                    {links, Links} = process_info(self(), links),
                    Dead = [P || P <- Links, is_pid(P), not is_process_alive(P)],
                    Self ! {Ref, N, Dead},
                    State
            end,
    case catch sys:replace_state(Sup, Probe, infinity) of
        {'EXIT', _} ->
            dead;
        _ ->
            receive {Ref, N, Dead} -> {N, Dead} end
    end.

suspend(#{pending := true} = Ctx) ->
    Ctx;
suspend(#{pending := false, sup := Sup} = Ctx) ->
    ok = sys:suspend(Sup, infinity),
    Ctx#{pending := true}.

release(#{pending := true, sup := Sup} = Ctx) ->
    ok = sys:resume(Sup, infinity),
    Ctx#{pending := false};
release(#{pending := false} = Ctx) ->
    Ctx.

release_and_settle(Ctx) ->
    settle(release(Ctx)).

%% Wait until the supervisor has handled everything in its mailbox,
%% including the try_again_restart casts it keeps sending itself, and has
%% taken in the exit signals of all its dead children.
%% Returns {ok, Ctx} or {dead, Reason}.
settle(#{sup := Sup} = Ctx) ->
    case probe(Sup) of
        {0, []} -> {ok, Ctx};
        {_, _} -> erlang:yield(), settle(Ctx);
        dead -> {dead, await_down(Ctx)}
    end.

await_down(#{sup := Sup, mon := Mon}) ->
    receive {'DOWN', Mon, process, Sup, Reason} -> Reason end.

exit_text(shutdown) -> <<"shutdown">>;
exit_text(Reason) -> text(Reason).

record(#{rec := Rec}, Entry) -> record(Rec, Entry);
record(Rec, Entry) -> ok = rec_call(Rec, {append, Entry}).

%%%===================================================================
%%% Supervisor callback
%%%===================================================================

init({Flags, Specs}) ->
    {ok, {Flags, Specs}}.

%%%===================================================================
%%% Children (the start function runs in the supervisor process)
%%%===================================================================

%% Pop the next scripted outcome of Id (default "ok"); the recorder appends
%% ["start", Id, Outcome] in the same call.
start_child(Id, Rec) ->
    case rec_call(Rec, {pop_outcome, Id}) of
        <<"ok">> ->
            Sup = self(),
            Pid = spawn_link(fun() -> child_init(Id, Rec, Sup) end),
            %% Wait until it traps exits: a shutdown right after the start
            %% must find it able to record its "stop".
            receive {child_ready, Pid} -> ok end,
            ok = rec_call(Rec, {started, Id, Pid}),
            {ok, Pid};
        <<"fail">> ->
            {error, scripted};
        <<"ignore">> ->
            ignore
    end.

%% The start function of a pool's children: the template's arguments, then
%% the ones given to supervisor:start_child/2.
start_pool_child(Rec, Id) ->
    start_child(Id, Rec).

child_init(Id, Rec, Sup) ->
    process_flag(trap_exit, true),
    Sup ! {child_ready, self()},
    child_loop(Id, Rec).

child_loop(Id, Rec) ->
    receive
        {'EXIT', _From, shutdown} ->
            %% The supervisor terminates us.
            record(Rec, [<<"stop">>, Id]),
            exit(shutdown);
        {'EXIT', _From, Reason} ->
            %% Only when the supervisor is killed at the end of a scenario.
            exit(Reason);
        {die, Reason} ->
            %% Told so by the runner ("exit" step).
            exit(Reason)
    end.

%%%===================================================================
%%% Recorder: trace + scripted start outcomes of one scenario
%%%===================================================================

%% Trace is reversed; Queues: #{Id => [Outcome]}, and the pid map of started
%% children, {pid_of, Id} => Pid (the latest) and {id_of, Pid} => Id;
%% Expect: what to do with the reply to the runner's request in flight:
%%   none                       no request in flight
%%   {expect, Entry}            waiting for reply_hook/3
%%   {expect, Entry, Waiter}    ... and the runner waits for it too
%%   done                       recorded; the runner has not asked yet
recorder(Trace, Queues, Expect) ->
    receive
        {rec, From, Ref, Req} ->
            case rec_handle(Req, {From, Ref}, Trace, Queues, Expect) of
                {reply, Reply, Trace1, Queues1, Expect1} ->
                    From ! {Ref, Reply},
                    recorder(Trace1, Queues1, Expect1);
                {noreply, Trace1, Queues1, Expect1} ->
                    recorder(Trace1, Queues1, Expect1)
            end
    end.

rec_handle({append, Entry}, _From, T, Q, E) ->
    {reply, ok, [Entry | T], Q, E};
rec_handle({script, Id, Outcomes}, _From, T, Q, E) ->
    {reply, ok, T, Q#{Id => maps:get(Id, Q, []) ++ Outcomes}, E};
rec_handle({pop_outcome, Id}, _From, T, Q, E) ->
    {Outcome, Q1} = case maps:get(Id, Q, []) of
                        [] -> {<<"ok">>, Q};
                        [O | Rest] -> {O, Q#{Id => Rest}}
                    end,
    {reply, Outcome, [[<<"start">>, Id, Outcome] | T], Q1, E};
rec_handle({started, Id, Pid}, _From, T, Q, E) ->
    {reply, ok, T, Q#{{pid_of, Id} => Pid, {id_of, Pid} => Id}, E};
rec_handle({pid_of, Id}, _From, T, Q, E) ->
    {reply, maps:get({pid_of, Id}, Q, undefined), T, Q, E};
rec_handle({id_of, Pid}, _From, T, Q, E) ->
    {reply, maps:get({id_of, Pid}, Q, undefined), T, Q, E};
rec_handle({expect_reply, Entry}, _From, T, Q, none) ->
    {reply, ok, T, Q, {expect, Entry}};
rec_handle({reply_sent, Reply}, _From, T, Q, {expect, Entry}) ->
    {reply, ok, add_entry(Entry({reply, Reply}), T), Q, done};
rec_handle({reply_sent, Reply}, _From, T, Q, {expect, Entry, {WPid, WRef}}) ->
    WPid ! {WRef, done},
    {reply, ok, add_entry(Entry({reply, Reply}), T), Q, none};
rec_handle(await_reply_recorded, _From, T, Q, done) ->
    {reply, done, T, Q, none};
rec_handle(await_reply_recorded, From, T, Q, {expect, Entry}) ->
    {noreply, T, Q, {expect, Entry, From}};
rec_handle(cancel_expect, _From, T, Q, {expect, _}) ->
    {reply, ok, T, Q, none};
rec_handle(trace, _From, T, Q, E) ->
    {reply, lists:reverse(T), T, Q, E}.

add_entry(skip, T) -> T;
add_entry(Entry, T) -> [Entry | T].

%% Synchronous call to the recorder; tolerates a dead recorder (only
%% possible after the end of a scenario).
rec_call(Rec, Req) ->
    Ref = monitor(process, Rec),
    Rec ! {rec, self(), Ref, Req},
    receive
        {Ref, Reply} ->
            erlang:demonitor(Ref, [flush]),
            Reply;
        {'DOWN', Ref, process, Rec, _} ->
            recorder_down
    end.

%%%===================================================================
%%% Text and JSON
%%%===================================================================

%% One-line ~p text of a term.
text(Term) ->
    unicode:characters_to_binary(io_lib:format("~0p", [Term])).

%% JSON of a trace: binaries are strings (UTF-8), integers, lists.
json(B) when is_binary(B) -> [$", json_escape(B), $"];
json(I) when is_integer(I) -> integer_to_binary(I);
json(L) when is_list(L) -> [$[, lists:join($,, [json(X) || X <- L]), $]].

json_escape(B) ->
    [case C of
         $" -> <<"\\\"">>;
         $\\ -> <<"\\\\">>;
         _ when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
         _ -> C
     end || <<C>> <= B].
