# SPDX-License-Identifier: GPL-2.0-or-later
# The guest's rate across and after one background snapshot, as a share of its rate before,
# frostvm and QEMU, one panel per sink. Variables (gnuplot -e): out, title, fa, qa, fb, qb
# (data: seconds since migrate, share of the rate before), fa_end, qa_end, fb_end, qb_end
# (seconds each snapshot ran), la, lb (panel labels).
set terminal pngcairo size 1100,760 font ',10'
set output out
set multiplot layout 2,1 title title font ',11'
set grid
set key bottom right
set xlabel 'seconds since the migrate command'
set ylabel 'guest rate, share of its rate before'
set yrange [0:1.3]

set ytics ('0%%' 0, '25%%' 0.25, '50%%' 0.5, '75%%' 0.75, '100%%' 1.0, '125%%' 1.25)
set arrow 1 from graph 0, first 0.98 to graph 1, first 0.98 nohead dt 2 lc rgb '#555555'
set xrange [-2:*]
set title la
set object 1 rect from 0, graph 0 to fa_end, graph 1 fc rgb '#1f77b4' fs transparent solid 0.12 noborder
set object 2 rect from 0, graph 0 to qa_end, graph 1 fc rgb '#d62728' fs transparent solid 0.10 noborder
plot fa using 1:2 with fsteps lw 2 lc rgb '#1f77b4' title 'frostvm', \
     qa using 1:2 with fsteps lw 2 lc rgb '#d62728' title 'QEMU 7.2'
set title lb
set object 1 rect from 0, graph 0 to fb_end, graph 1 fc rgb '#1f77b4' fs transparent solid 0.12 noborder
set object 2 rect from 0, graph 0 to qb_end, graph 1 fc rgb '#d62728' fs transparent solid 0.10 noborder
plot fb using 1:2 with fsteps lw 2 lc rgb '#1f77b4' title 'frostvm', \
     qb using 1:2 with fsteps lw 2 lc rgb '#d62728' title 'QEMU 7.2'
unset multiplot
