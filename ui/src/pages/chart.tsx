import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** One metric over steps, drawn on a canvas (uPlot); new points redraw without a remount. */
export function MetricChart(props: { name: string; steps: number[]; values: number[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width: 560,
        height: 200,
        scales: { x: { time: false } },
        series: [{ label: "step" }, { label: props.name, stroke: "#2563eb", width: 2 }],
        axes: [{}, {}],
      },
      [props.steps, props.values],
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.name]);
  useEffect(() => {
    plot.current?.setData([props.steps, props.values]);
  }, [props.steps, props.values]);
  return (
    <div class="chart" data-metric={props.name} data-points={props.steps.length}>
      <div class="chart-title">{props.name}</div>
      <div ref={box} />
    </div>
  );
}
